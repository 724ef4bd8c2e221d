// PostgreSQL over TLS without touching the server's configuration: a loopback front that speaks the
// protocol's TLS opening (the client's SSLRequest, answered 'S', then a TLS handshake with the
// certificate given) and passes the decrypted stream to the real server in plain text. What the
// client checks (chain, name) is exactly what it would check against a server with ssl=on.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TLSSocket } from 'node:tls'

/** The protocol's SSLRequest code (a length of 8, then 1234 << 16 | 5679). */
const SSL_REQUEST = 80877103

export interface TestPki {
  dir: string
  /** The CA that signed both server certificates, and another one that signed nothing here. */
  caFile: string
  otherCaFile: string
  /** For 127.0.0.1 and localhost, and for db.example.test only (a name the tests never connect by). */
  server: { key: string, cert: string }
  wrongName: { key: string, cert: string }
}

/** Two throwaway CAs and two server certificates, made with the openssl command (EC P-256, valid 2 days). */
export function createTestPki (): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-pki-'))
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }) }
  const ca = (name: string): void => openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=authgate test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  ca('ca')
  ca('other-ca')
  const server = (name: string, subjectAltName: string): { key: string, cert: string } => {
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${subjectAltName}\nextendedKeyUsage=serverAuth\n`)
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`)
    return { key: readFileSync(join(dir, `${name}.key`), 'utf8'), cert: readFileSync(join(dir, `${name}.pem`), 'utf8') }
  }
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    otherCaFile: join(dir, 'other-ca.pem'),
    server: server('server', 'IP:127.0.0.1,DNS:localhost'),
    wrongName: server('wrong-name', 'DNS:db.example.test')
  }
}

export interface TlsFront {
  port: number
  /** TLS handshakes completed, and connections that did not ask for TLS (closed at once). */
  handshakes: number
  plaintextRefused: number
  close: () => Promise<void>
}

/** A TLS-only PostgreSQL on an ephemeral loopback port, in front of `backend`. */
export async function startTlsFront (backend: { host: string, port: number }, certificate: { key: string, cert: string }): Promise<TlsFront> {
  const sockets = new Set<Socket>()
  const front: TlsFront = { port: 0, handshakes: 0, plaintextRefused: 0, close: async () => {} }
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.once('readable', () => {
      const opening = socket.read(8) as Buffer | null
      if (opening === null || opening.readInt32BE(0) !== 8 || opening.readInt32BE(4) !== SSL_REQUEST) {
        // A server with only hostssl lines: a client that does not ask for TLS gets nowhere.
        front.plaintextRefused++
        socket.destroy()
        return
      }
      socket.write('S')
      const tls = new TLSSocket(socket, { isServer: true, key: certificate.key, cert: certificate.cert })
      tls.on('error', () => { socket.destroy() })
      tls.once('secure', () => {
        front.handshakes++
        const upstream = connect(backend.port, backend.host)
        sockets.add(upstream)
        upstream.on('close', () => { sockets.delete(upstream); tls.destroy() })
        upstream.on('error', () => { tls.destroy() })
        tls.on('close', () => { upstream.destroy() })
        tls.pipe(upstream).pipe(tls)
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  front.port = (server.address() as AddressInfo).port
  front.close = async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }
  return front
}
