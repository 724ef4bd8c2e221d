// deploy/kubernetes rendered with `kubectl kustomize` (offline), every object validated against the
// Kubernetes schemas (kubernetes-models), then the fields that matter: TimeTracker on 127.0.0.1 only,
// a Service and a NetworkPolicy that know the gateway's port alone, probes, security contexts,
// resources, the Secret's keys where each container needs them, and the gateway's configuration as
// its container would load it. No cluster runs here: what a cluster would do with it is not tested.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/index.js'
import { KNOWN_VARIABLES } from '../../src/config/variables.js'
import { requireTool } from '../support/tools.js'
import { ROOT, generateSecrets, imageEnvironment, parseYamlStream, runWrapper, tempDir } from './deploy-files.js'

const kubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0 ? 'kubectl' : undefined
if (!requireTool(t, 'kubectl', kubectl, 'kubectl 1.32 or later, for `kubectl kustomize`')) process.exit(0)

/** The kustomization, copied with generated secrets (never committed) as an operator prepares it, rendered. */
function render (dir: string): any[] {
  cpSync(join(ROOT, 'deploy/kubernetes'), dir, { recursive: true, filter: (src) => !src.includes('/secrets') })
  generateSecrets(join(dir, 'secrets'), { DB_HOST: 'postgresql:5432' })
  const out = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })
  if (out.status !== 0) throw new Error(`kubectl kustomize failed: ${out.stderr}`)
  return parseYamlStream(out.stdout)
}

/** Validates one object against its kind's schema: throws with what is wrong. */
async function validate (o: any): Promise<void> {
  const [group, version] = String(o.apiVersion).includes('/') ? String(o.apiVersion).split('/') : [undefined, o.apiVersion]
  const mod = await import(group === undefined ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`) as Record<string, new (o: unknown) => { validate: () => void }>
  const Model = mod[o.kind]
  if (Model === undefined) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`)
  new Model(o).validate()
}

const { dir, remove } = tempDir('authgate-kustomize-')
t.teardown(remove)
const objects = render(dir)
const one = (kind: string): any => {
  const found = objects.filter((o) => o.kind === kind)
  if (found.length !== 1) throw new Error(`${found.length} ${kind} objects`)
  return found[0]
}
const deployment = one('Deployment')
const pod = deployment.spec.template.spec
const container = (name: string): any => pod.containers.find((c: any) => c.name === name)
const configMap = one('ConfigMap')
const secret = one('Secret')
const secretData = (key: string): string => Buffer.from(secret.data[key], 'base64').toString('utf8')

t.test('renders offline; every object is valid for its kind', async (t) => {
  t.same(objects.map((o) => o.kind).sort(), ['ConfigMap', 'Deployment', 'NetworkPolicy', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Secret', 'Service'])
  for (const o of objects) {
    // kustomize wraps a Secret's base64 at 70 characters; the API server's decoder (Go's) skips the
    // line breaks, the schema's `byte` pattern does not: unwrapped, as the server reads them.
    const read = o.kind === 'Secret' ? { ...o, data: Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, String(v).replace(/\n/g, '')])) } : o
    await t.resolves(validate(read), `${o.kind} ${o.metadata.name}`)
  }
  // The validator can say no: a port that is not a number, a probe without a handler's fields right.
  const broken = structuredClone(deployment)
  broken.spec.template.spec.containers[0].ports[0].containerPort = 'eighty'
  await t.rejects(validate(broken), /containerPort/, 'a wrong type is caught')
})

t.test('the Secret: generated from files that git ignores, so no value is ever committed', async (t) => {
  t.same(Object.keys(secret.data).sort(), ['authgate_database_url', 'authgate_secret_key', 'header_signing_secret', 'timetracker_database_url', 'timetracker_secret_key'])
  t.match(secret.metadata.name, /^timetracker-secrets-[a-z0-9]+$/, 'a content hash in the name: a new Secret rolls the pod')
  const ignored = spawnSync('git', ['check-ignore', '-q', 'deploy/kubernetes/secrets/header_signing_secret'], { cwd: ROOT })
  t.equal(ignored.status, 0, 'deploy/kubernetes/secrets/ is ignored by git')
  const tracked = spawnSync('git', ['ls-files', 'deploy/kubernetes/secrets'], { cwd: ROOT, encoding: 'utf8' })
  t.equal(tracked.status, 0, 'git ls-files ran (outside a repository it prints nothing either)')
  t.equal(tracked.stdout, '', 'nothing tracked there')
})

t.test('one pod: the gateway in front, TimeTracker on 127.0.0.1 only', async (t) => {
  t.same(pod.containers.map((c: any) => c.name), ['authgate', 'timetracker'])
  t.same(container('authgate').ports, [{ name: 'gateway', containerPort: 8080, protocol: 'TCP' }])
  t.notOk(container('timetracker').ports, 'TimeTracker declares no port')
  const args = container('timetracker').args.join(' ')
  t.match(args, /--bind 127\.0\.0\.1:5000 /, 'TimeTracker binds the pod\'s loopback')
  t.notMatch(args, /0\.0\.0\.0|--bind (?!127\.0\.0\.1)/)
  t.match(args, /'?authgate_timetracker:create_app\(\)'?$/)
  const env = Object.fromEntries(container('authgate').env.map((e: any) => [e.name, e.value]))
  t.equal(env.UPSTREAM_URL, 'http://127.0.0.1:5000', 'the gateway reaches it there')
  t.equal(deployment.spec.replicas, 1)
  t.equal(deployment.spec.strategy.type, 'Recreate')
  t.same(deployment.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'timetracker' })
  t.match(deployment.spec.template.metadata.labels, deployment.spec.selector.matchLabels)
  t.equal(pod.automountServiceAccountToken, false)
})

t.test('probes: healthz for liveness, readyz for readiness, on the gateway\'s port', async (t) => {
  const gateway = container('authgate')
  t.same(gateway.livenessProbe.httpGet, { path: '/_authgate/healthz', port: 'gateway' })
  t.same(gateway.readinessProbe.httpGet, { path: '/_authgate/readyz', port: 'gateway' })
  t.same(gateway.startupProbe.httpGet, { path: '/_authgate/healthz', port: 'gateway' })
  // TimeTracker is not on the pod's address: its probes run inside its container, on its loopback port.
  for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
    t.same(container('timetracker')[probe].exec.command, ['curl', '-fsS', '-o', '/dev/null', 'http://127.0.0.1:5000/_health'], `TimeTracker ${probe}`)
  }
})

t.test('security contexts: non-root, no privilege escalation, no capabilities, read-only root, RuntimeDefault seccomp', async (t) => {
  t.match(pod.securityContext, { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } })
  for (const c of [...pod.initContainers, ...pod.containers]) {
    t.same(c.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }, c.name)
    t.match(c.resources, { requests: { cpu: String, memory: String }, limits: { cpu: String, memory: String } }, `${c.name}: requests and limits`)
    const volumes = new Set(pod.volumes.map((v: any) => v.name))
    for (const m of c.volumeMounts) t.ok(volumes.has(m.name), `${c.name}: volume ${m.name} exists`)
  }
  const writable = (name: string): string[] => container(name).volumeMounts.filter((m: any) => m.readOnly !== true).map((m: any) => m.mountPath).sort()
  t.same(writable('authgate'), ['/app/data', '/tmp'])
  t.same(writable('timetracker'), ['/app/app/static/uploads', '/app/logs', '/app/translations', '/data', '/tmp'])
})

t.test('the integration files: copied from the authgate image into a volume TimeTracker mounts read-only on its PYTHONPATH', async (t) => {
  const init = pod.initContainers.find((c: any) => c.name === 'integration')
  t.equal(init.image, container('authgate').image, 'the same image as the gateway')
  t.match(init.command.join(' '), 'cp /app/integrations/timetracker/*.py /opt/authgate-timetracker/')
  t.match(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'), /integrations\/timetracker\/authgate_timetracker\.py \.\/integrations\/timetracker\//, 'the image ships them there')
  const mount = container('timetracker').volumeMounts.find((m: any) => m.name === 'integration')
  t.same(mount, { name: 'integration', mountPath: '/opt/authgate-timetracker', readOnly: true })
  t.same(init.volumeMounts, [{ name: 'integration', mountPath: '/opt/authgate-timetracker' }])
  t.equal(container('timetracker').env.find((e: any) => e.name === 'PYTHONPATH').value, '/opt/authgate-timetracker')
})

/** A container's environment with ConfigMap references resolved, and each *_FILE written from the Secret to `dir`. */
function resolvedEnv (c: any, fileDir: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const e of c.env) {
    const ref = e.valueFrom?.configMapKeyRef
    if (ref !== undefined) {
      if (ref.name !== configMap.metadata.name) throw new Error(`${e.name}: unknown ConfigMap ${ref.name}`)
      env[e.name] = configMap.data[ref.key]
    } else {
      env[e.name] = e.value
    }
    if (!e.name.endsWith('_FILE') || !env[e.name]!.startsWith('/run/secrets/')) continue
    const mount = c.volumeMounts.find((m: any) => env[e.name]!.startsWith(`${m.mountPath}/`))
    const volume = pod.volumes.find((v: any) => v.name === mount?.name)
    if (volume?.secret?.secretName !== secret.metadata.name) throw new Error(`${c.name} ${e.name}: ${env[e.name]} is not in a mount of the Secret`)
    const item = volume.secret.items.find((i: any) => `${mount.mountPath}/${i.path}` === env[e.name])
    if (item === undefined) throw new Error(`${c.name} ${e.name}: no item of the Secret at ${env[e.name]}`)
    const file = join(fileDir, `${c.name}-${e.name}`)
    writeFileSync(file, secretData(item.key))
    env[e.name] = file
  }
  return env
}

t.test('each container mounts only its own keys of the Secret, and both the same header secret', async (t) => {
  const keys = (volume: string): string[] => pod.volumes.find((v: any) => v.name === volume).secret.items.map((i: any) => i.key).sort()
  t.same(keys('authgate-secrets'), ['authgate_database_url', 'authgate_secret_key', 'header_signing_secret'])
  t.same(keys('timetracker-secrets'), ['header_signing_secret', 'timetracker_database_url', 'timetracker_secret_key'])
  for (const e of container('authgate').env) {
    if (e.name.endsWith('_FILE')) t.match(e.value, /^\/run\/secrets\/authgate\//, `${e.name} is a file of the Secret`)
    else if (/SECRET|PASSWORD|_KEY$/.test(e.name) || e.name === 'DATABASE_URL') t.equal(e.value, '', `${e.name} holds no value`)
  }
  const { dir: d, remove: r } = tempDir('authgate-kustomize-env-')
  t.teardown(r)
  const gateway = resolvedEnv(container('authgate'), d)
  const timetracker = resolvedEnv(container('timetracker'), d)
  t.equal(readFileSync(gateway.HEADER_SIGNING_SECRET_FILE!, 'utf8'), readFileSync(timetracker.HEADER_SIGNING_SECRET_FILE!, 'utf8'), 'one header secret')
  t.equal(gateway.SKIP_AUTH_PATHS, '/api/v1/,/static/,/_health,/_ready')
  t.equal(timetracker.SKIP_AUTH_PATHS, gateway.SKIP_AUTH_PATHS, 'one skip list, from one ConfigMap key')
  t.equal(timetracker.LICENSE_SERVER_ENABLED, 'false')
})

t.test('the gateway\'s configuration loads as its container loads it: the image\'s ENV, then the Deployment\'s', async (t) => {
  const { dir: d, remove: r } = tempDir('authgate-kustomize-config-')
  t.teardown(r)
  const env = resolvedEnv(container('authgate'), d)
  for (const key of Object.keys(env)) t.ok(KNOWN_VARIABLES.has(key), `${key} is a gateway variable`)
  const config = loadConfig({ ...imageEnvironment(), ...env }, { cwd: d, dotenv: false })
  t.equal(config.production, true)
  t.equal(config.host, '0.0.0.0', 'every interface of the pod: the Service reaches it')
  t.equal(config.port, 8080)
  t.match(config.databaseUrl, /^postgres:\/\/authgate:[0-9a-f]{48}@postgresql:5432\/authgate$/)
  t.equal(config.publicUrl?.href, 'https://tt.example.com/')
  t.same(config.unknownVariables, [])
})

t.test('TimeTracker\'s command reads SECRET_KEY and DATABASE_URL from the Secret\'s files, then runs the image\'s entrypoint with args', async (t) => {
  const c = container('timetracker')
  t.same(c.command.slice(0, 2), ['sh', '-c'])
  t.equal(c.command.length, 4)
  // Kubernetes turns $$ into $ (and would expand a $(NAME) of a defined variable: there is none here).
  const script = c.command[2].replaceAll('$$', '$')
  t.notMatch(c.command[2], /(?<!\$)\$\([A-Z_]+\)/, 'no $(NAME) for Kubernetes to expand')
  const { dir: d, remove: r } = tempDir('authgate-kustomize-wrapper-')
  t.teardown(r)
  const env = resolvedEnv(c, d)
  writeFileSync(join(d, 'timetracker_secret_key'), secretData('timetracker_secret_key'))
  writeFileSync(join(d, 'timetracker_database_url'), secretData('timetracker_database_url'))
  const out = runWrapper(script.replaceAll('/run/secrets/timetracker/', `${d}/`), c.command[3], c.args, '/app/docker/entrypoint_fixed.sh', d)
  t.equal(out.env.SECRET_KEY, secretData('timetracker_secret_key').trim())
  t.equal(out.env.DATABASE_URL, secretData('timetracker_database_url').trim())
  t.equal(out.argv, c.args.join(' '), 'args reach the image\'s entrypoint unchanged')
  t.ok(env.HEADER_SIGNING_SECRET_FILE)
})

t.test('the Service targets the gateway\'s port and nothing else', async (t) => {
  const service = one('Service')
  t.same(service.spec.selector, deployment.spec.template.metadata.labels, 'selects the pod')
  t.equal(service.spec.type, 'ClusterIP')
  t.same(service.spec.ports, [{ name: 'http', port: 80, targetPort: 'gateway', protocol: 'TCP' }])
  t.equal(container('authgate').ports.find((p: any) => p.name === 'gateway').containerPort, 8080, '`gateway` is the gateway container\'s 8080')
})

t.test('the NetworkPolicy: in, the gateway\'s port only; out, DNS, PostgreSQL and HTTPS', async (t) => {
  const policy = one('NetworkPolicy')
  t.same(policy.spec.podSelector.matchLabels, deployment.spec.template.metadata.labels)
  t.same(policy.spec.policyTypes, ['Ingress', 'Egress'])
  t.same(policy.spec.ingress, [{ ports: [{ port: 8080, protocol: 'TCP' }] }], 'one rule: TCP 8080')
  const egress = policy.spec.egress as any[]
  for (const rule of egress) t.ok(rule.ports?.length > 0 && rule.to?.length > 0, 'every egress rule names ports and peers (none allows everything)')
  t.same(egress.map((r) => r.ports.map((p: any) => `${p.protocol}/${p.port}`).join(',')), ['UDP/53,TCP/53', 'TCP/5432', 'TCP/443'])
  t.same(egress[0].to, [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }])
  t.match(egress[2].to[0].ipBlock, { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'] }, 'HTTPS outside the private ranges')
})

t.test('the PodDisruptionBudget selects the pod', async (t) => {
  const pdb = one('PodDisruptionBudget')
  t.same(pdb.spec.selector.matchLabels, deployment.spec.template.metadata.labels)
  t.equal(pdb.spec.maxUnavailable, 1)
})
