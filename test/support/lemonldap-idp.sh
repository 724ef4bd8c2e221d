#!/usr/bin/env bash
# A private LemonLDAP::NG 2.16 OpenID Provider on loopback (Debian 12 packages), for authgate interop tests
# (test/interop/lemonldap.test.ts). Written for this project (MIT, like the rest of the repository).
#
#   test/support/lemonldap-idp.sh packages                        # the Debian packages it needs (.ci/run installs them)
#   IDP_DIR=$WORK/llng test/support/lemonldap-idp.sh install      # once per machine (root): apt-get the packages
#   IDP_DIR=$WORK/llng test/support/lemonldap-idp.sh start        # write config into $IDP_DIR, start FastCGI + nginx, wait for discovery
#   IDP_DIR=$WORK/llng test/support/lemonldap-idp.sh env          # print the authgate OIDC_* variables for this IdP
#   IDP_DIR=$WORK/llng test/support/lemonldap-idp.sh stop         # stop what start started (by the PIDs it recorded)
#
# Everything lives in $IDP_DIR (config, keys, sessions, logs, sockets); nothing under /etc is touched and
# the system's nginx / llng-fastcgi-server services are not used. Runs as root; the FastCGI server drops
# to www-data, so www-data must be able to traverse to $IDP_DIR (chmod o+x on a mktemp -d parent).
# Demo users: dwho, rtyler, msmith (password = login). Groups: dwho=timelords,users; others=earthlings,users.
set -euo pipefail

PACKAGES=(lemonldap-ng lemonldap-ng-fastcgi-server nginx curl openssl libimage-magick-perl
  fonts-urw-base35 libapache-session-browseable-perl libauthen-webauthn-perl libconvert-base32-perl
  libcookie-baker-xs-perl libcrypt-openssl-bignum-perl libdbi-perl libemail-sender-perl libgd-securityimage-perl
  libhttp-parser-xs-perl libio-socket-timeout-perl libio-string-perl libipc-run-perl liblwp-protocol-https-perl
  libmime-tools-perl libnet-ldap-perl libstring-random-perl libunicode-string-perl)
if [ "${1:-}" = packages ]; then printf '%s\n' "${PACKAGES[@]}"; exit 0; fi

: "${IDP_DIR:?set IDP_DIR to a scratch directory}"
IDP_PORT=${IDP_PORT:-8190}
IDP_HOST=${IDP_HOST:-127.0.0.1}
PORTAL="http://$IDP_HOST:$IDP_PORT/"          # issuer = portal URL, trailing slash included (LLNG default)
RP_ID=${RP_ID:-authgate}
RP_SECRET=${RP_SECRET:-authgate-secret-0123456789abcdef}
AG_URL=${AG_URL:-http://127.0.0.1:8200}         # where authgate listens (callback + post-logout are derived)
RP_REDIRECT_URI=${RP_REDIRECT_URI:-$AG_URL/auth/oidc/callback}
RP_POST_LOGOUT_URI=${RP_POST_LOGOUT_URI:-$AG_URL/login}
ID_TOKEN_ALG=${ID_TOKEN_ALG:-RS256}             # LLNG's own default for a new RP is HS512 (authgate refuses HS*)
REQUIRE_PKCE=${REQUIRE_PKCE:-1}
LOGOUT_BYPASS_CONFIRM=${LOGOUT_BYPASS_CONFIRM:-0}   # 0: LLNG asks "confirm logout?" at end_session
FRONTCHANNEL_LOGOUT_URL=${FRONTCHANNEL_LOGOUT_URL:-} # LLNG 2.16 has front-channel logout only (no back-channel)
IDP_LOG_LEVEL=${IDP_LOG_LEVEL:-info}
NPROC=${NPROC:-2}

run=$IDP_DIR/run
cmd=${1:-}

install_pkgs() {
  # The portal's Recommends are needed too (captcha, SMTP for the demo's Register plugin...), but a plain
  # install with recommends would also pull libnginx-mod-http-lua into the system nginx: list them instead.
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
}

write_config() {
  # LLNG caches the configuration by number (always 1 here) for 10 minutes: drop the cache, or a
  # restart with other settings would silently keep the previous ones.
  rm -rf "$IDP_DIR/cache"
  mkdir -p "$IDP_DIR"/{conf,sessions/lock,psessions/lock,cache,notifications,captcha,run,log,nginx-tmp}
  [ -f "$IDP_DIR/oidc.key" ] || openssl genrsa -out "$IDP_DIR/oidc.key" 2048 2>/dev/null
  openssl rsa -in "$IDP_DIR/oidc.key" -pubout -out "$IDP_DIR/oidc.pub" 2>/dev/null
  sed -e "s#/var/lib/lemonldap-ng/conf#$IDP_DIR/conf#" -e "s#/var/lib/lemonldap-ng/cache#$IDP_DIR/cache#" \
      -e "s#^logLevel .*#logLevel = $IDP_LOG_LEVEL#" /etc/lemonldap-ng/lemonldap-ng.ini > "$IDP_DIR/lemonldap-ng.ini"
  # Start from the packaged demo configuration and change only what the OP needs.
  IDP_DIR=$IDP_DIR PORTAL=$PORTAL IDP_HOST=$IDP_HOST RP_ID=$RP_ID RP_SECRET=$RP_SECRET RP_REDIRECT_URI=$RP_REDIRECT_URI \
  RP_POST_LOGOUT_URI=$RP_POST_LOGOUT_URI ID_TOKEN_ALG=$ID_TOKEN_ALG REQUIRE_PKCE=$REQUIRE_PKCE \
  LOGOUT_BYPASS_CONFIRM=$LOGOUT_BYPASS_CONFIRM FRONTCHANNEL_LOGOUT_URL=$FRONTCHANNEL_LOGOUT_URL \
  perl -MJSON -e '
    my $d = $ENV{IDP_DIR}; local $/; open my $f, "<", "/var/lib/lemonldap-ng/conf/lmConf-1.json" or die "packaged lmConf-1.json: $!";
    my $c = decode_json(<$f>);
    sub slurp { local $/; open my $h, "<", $_[0] or die $!; my $s = <$h>; $s }
    $c->{portal} = $ENV{PORTAL}; $c->{domain} = $ENV{IDP_HOST}; $c->{securedCookie} = 0;
    $c->{cfgNum} = 1; $c->{cfgDate} = time;
    $c->{globalStorageOptions}{Directory} = "$d/sessions"; $c->{globalStorageOptions}{LockDirectory} = "$d/sessions/lock";
    $c->{persistentStorageOptions} = { Directory => "$d/psessions", LockDirectory => "$d/psessions/lock" };
    $c->{localSessionStorageOptions}{cache_root} = "$d/cache";
    $c->{notificationStorageOptions}{dirName} = "$d/notifications";
    $c->{reloadUrls} = {};
    $c->{locationRules}{$ENV{IDP_HOST}} = delete $c->{locationRules}{"auth.example.com"};
    $c->{issuerDBOpenIDConnectActivation} = 1;
    $c->{oidcServicePrivateKeySig} = slurp("$d/oidc.key");
    $c->{oidcServicePublicKeySig} = slurp("$d/oidc.pub");
    $c->{oidcServiceKeyIdSig} = "llng-1";
    my $rp = $ENV{RP_ID};
    $c->{oidcRPMetaDataOptions}{$rp} = {
      oidcRPMetaDataOptionsClientID => $rp, oidcRPMetaDataOptionsClientSecret => $ENV{RP_SECRET},
      oidcRPMetaDataOptionsDisplayName => "authgate", oidcRPMetaDataOptionsPublic => 0,
      oidcRPMetaDataOptionsRedirectUris => $ENV{RP_REDIRECT_URI},
      oidcRPMetaDataOptionsPostLogoutRedirectUris => $ENV{RP_POST_LOGOUT_URI},
      oidcRPMetaDataOptionsIDTokenSignAlg => $ENV{ID_TOKEN_ALG},
      oidcRPMetaDataOptionsRequirePKCE => 0 + $ENV{REQUIRE_PKCE},
      oidcRPMetaDataOptionsBypassConsent => 1,
      oidcRPMetaDataOptionsLogoutBypassConfirm => 0 + $ENV{LOGOUT_BYPASS_CONFIRM},
      ($ENV{FRONTCHANNEL_LOGOUT_URL} ? (oidcRPMetaDataOptionsLogoutUrl => $ENV{FRONTCHANNEL_LOGOUT_URL},
         oidcRPMetaDataOptionsLogoutType => "front", oidcRPMetaDataOptionsLogoutSessionRequired => 1) : ()),
    };
    $c->{oidcRPMetaDataExportedVars}{$rp} = { preferred_username => "uid", name => "cn", email => "mail",
      groups => "groups;string;always" };
    $c->{oidcRPMetaDataOptionsExtraClaims}{$rp} = { groups => "groups" };
    open my $o, ">", "$d/conf/lmConf-1.json" or die $!; print $o JSON->new->pretty->canonical->encode($c);
  '
  cat > "$IDP_DIR/nginx.conf" <<EOF
worker_processes 1;
user www-data;
pid $run/nginx.pid;
error_log $IDP_DIR/log/nginx-error.log;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log $IDP_DIR/log/nginx-access.log;
  client_body_temp_path $IDP_DIR/nginx-tmp/body; proxy_temp_path $IDP_DIR/nginx-tmp/proxy;
  fastcgi_temp_path $IDP_DIR/nginx-tmp/fastcgi; uwsgi_temp_path $IDP_DIR/nginx-tmp/uwsgi; scgi_temp_path $IDP_DIR/nginx-tmp/scgi;
  server {
    listen $IDP_HOST:$IDP_PORT;
    root /usr/share/lemonldap-ng/portal/htdocs/;
    if (\$uri !~ ^/((static|javascript|favicon).*|.*\.psgi)) { rewrite ^/(.*)\$ /index.psgi/\$1 break; }
    location ~ ^(?<sc>/.*\.psgi)(?:\$|/) {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass unix:$run/fcgi.sock;
      fastcgi_param HTTP_HOST \$http_host;
      fastcgi_param LLTYPE psgi;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_split_path_info ^(.*\.psgi)(/.*)\$;
      fastcgi_param PATH_INFO \$fastcgi_path_info;
      location ~ ^/index.psgi/(adminSessions|proxy|sessions|config|notification) { deny all; }
    }
    index index.psgi;
    location / { try_files \$uri \$uri/ =404; }
    location /static/ { alias /usr/share/lemonldap-ng/portal/htdocs/static/; }
    location /javascript/ { alias /usr/share/javascript/; }
  }
}
EOF
  chown -R www-data:www-data "$IDP_DIR"
  chmod 755 "$IDP_DIR"
  runuser -u www-data -- test -r "$IDP_DIR/lemonldap-ng.ini" || {
    echo "www-data cannot reach $IDP_DIR: chmod o+x its parent directories" >&2; exit 1; }
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  alive "$run/fcgi.pid" && { echo "already running (fcgi pid $(cat "$run/fcgi.pid"))" >&2; exit 1; }
  write_config
  # FastCGI server in the foreground of its own session, so stop can end its whole process group.
  LLNG_DEFAULTCONFFILE=$IDP_DIR/lemonldap-ng.ini LLNG_DEFAULTLOGGER=Lemonldap::NG::Common::Logger::Std \
    setsid /usr/sbin/llng-fastcgi-server --foreground -u www-data -g www-data -n "$NPROC" \
      -s "$run/fcgi.sock" -p "$run/fcgi-plack.pid" >>"$IDP_DIR/log/llng.log" 2>&1 < /dev/null &
  echo $! > "$run/fcgi.pid"
  for _ in $(seq 50); do [ -S "$run/fcgi.sock" ] && break; sleep 0.2; done
  nginx -e "$IDP_DIR/log/nginx-error.log" -c "$IDP_DIR/nginx.conf" -p "$IDP_DIR/"
  for _ in $(seq 100); do
    if curl -fsS "${PORTAL}.well-known/openid-configuration" -o "$IDP_DIR/discovery.json" 2>/dev/null; then
      echo "LemonLDAP::NG OP up: issuer $PORTAL (logs in $IDP_DIR/log)"; return 0; fi
    sleep 0.3
  done
  echo "discovery did not answer; see $IDP_DIR/log" >&2; stop; exit 1
}

stop() {
  if alive "$run/nginx.pid"; then kill -QUIT "$(cat "$run/nginx.pid")"; fi
  if alive "$run/fcgi.pid"; then
    local pid; pid=$(cat "$run/fcgi.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$run/fcgi.pid" "$run/fcgi.sock"
  echo "stopped"
}

case "$cmd" in
  install) install_pkgs ;;
  start) start ;;
  stop) stop ;;
  status) alive "$run/fcgi.pid" && alive "$run/nginx.pid" && echo running || { echo stopped; exit 1; } ;;
  env) cat <<EOF
AUTH_METHOD=oidc
OIDC_ISSUER=$PORTAL
OIDC_CLIENT_ID=$RP_ID
OIDC_CLIENT_SECRET=$RP_SECRET
OIDC_REDIRECT_URI=$RP_REDIRECT_URI
OIDC_POST_LOGOUT_REDIRECT_URI=$RP_POST_LOGOUT_URI
OIDC_SCOPES='openid profile email groups'
EOF
  ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
