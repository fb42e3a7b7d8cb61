// deploy/: every YAML file parses; the Kustomize base and its overlays render (checked against
// `kubectl kustomize` where kubectl is installed) into objects that validate against the
// Kubernetes, Gateway API, InferencePool and KEDA schemas (k8s-schema.ts); the objects refer to
// each other consistently; the weft container's flags parse as weft's own, its probes answer as
// the pod needs, and the metric names the endpoint picker and KEDA read are ones weft exports;
// the Dockerfiles copy files that exist.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

import t from 'tap';
import { parse as parseYaml } from 'yaml';

import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { REPO_ROOT } from '../fixtures/paths.js';
import { parsePrometheusText, type Family } from '../fixtures/prom-text.js';
import { any, arr, int, obj, oneOf, str, validateObject, type Errors } from './k8s-schema.js';
import { readYamlDocuments, renderKustomization, type K8sObject } from './kustomize-lite.js';

const DEPLOY = join(REPO_ROOT, 'deploy');
const RENDERS = { base: 'kustomize/base', example: 'kustomize/overlays/example', gpu: 'kustomize/overlays/gpu' } as const;

const yamlFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );

const kubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

// ---- lookups on a render ----

// a rendered object, read freely (the schemas have checked its shape)
type Obj = K8sObject & Record<string, any>;
const find = (docs: Obj[], kind: string, name: string): Obj => {
  const o = docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in the render`);
  return o;
};
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
const podLabels = (d: Obj): Record<string, string> => d.spec.template.metadata?.labels ?? {};
const weftContainer = (docs: Obj[]) => find(docs, 'Deployment', 'weft').spec.template.spec.containers.find((c: Obj) => c.name === 'weft');

// ---- llm-d's endpoint picker: its configuration and the metric names it reads ----

// EndpointPickerConfig (llm-d-router, apiVersion llm-d.ai/v1alpha1): the fields used here
const pluginRef = obj({ 'pluginRef!': str, weight: any });
const engineConfig = obj({
  'name!': str,
  queuedRequestsSpec: str,
  runningRequestsSpec: str,
  kvUsageSpec: str,
  loraSpec: str,
  cacheInfoSpec: str,
  cacheBlockSizeLabelName: str,
  cacheNumBlocksLabelName: str,
});
const eppConfigSchema = obj({
  'apiVersion!': oneOf('llm-d.ai/v1alpha1'),
  'kind!': oneOf('EndpointPickerConfig'),
  featureGates: arr(str),
  'plugins!': arr(obj({ name: str, 'type!': str, parameters: any }), 1),
  schedulingProfiles: arr(obj({ 'name!': str, 'plugins!': arr(pluginRef) }), 1),
  dataLayer: obj({ sources: arr(obj({ 'pluginRef!': str, extractors: arr(pluginRef) })) }),
});
const extractorParams = obj({ engineLabelKey: str, defaultEngine: str, engineConfigs: arr(engineConfig) });
const prefixProducerParams = obj({ blockSizeTokens: int(1), maxPrefixBlocksToMatch: int(1), lruCapacityPerServer: int(1) });

interface EngineMapping {
  queuedRequestsSpec?: string;
  runningRequestsSpec?: string;
  kvUsageSpec?: string;
  loraSpec?: string;
  cacheInfoSpec?: string;
}
// the picker's built-in mapping for pods without the engine label (llm-d-router's core-metrics-extractor defaults)
const BUILTIN_VLLM: EngineMapping = {
  queuedRequestsSpec: 'vllm:num_requests_waiting',
  runningRequestsSpec: 'vllm:num_requests_running',
  kvUsageSpec: 'vllm:kv_cache_usage_perc',
  loraSpec: 'vllm:lora_requests_info',
  cacheInfoSpec: 'vllm:cache_config_info',
};

// What /metrics of a pod started with `config` carries, an engine's stats attached.
async function weftFamilies(config: Readonly<Config>): Promise<Map<string, Family>> {
  const m = new Metrics({ defaultMetrics: false, compat: config.metricsCompat });
  m.addStatsSource(() => [
    {
      numWaiting: 0,
      numRunning: 0,
      numPreemptions: 0,
      numUsedBlocks: 0,
      numFreeBlocks: config.kvCacheBlocks,
      kvCacheUsage: 0,
      numPrefixCacheQueries: 0,
      numPrefixCacheHits: 0,
      numBlocks: config.kvCacheBlocks,
      blockSize: config.blockSize,
      lastStepNumSeqs: 0,
      lastStepNumTokens: 0,
    },
  ]);
  return parsePrometheusText(await m.text());
}

t.test('every YAML file under deploy/ parses, and names kinds these tests know', async (t) => {
  const files = yamlFiles(DEPLOY);
  t.ok(files.length >= 15, `${files.length} YAML files`);
  for (const f of files) {
    const docs = readYamlDocuments(f) as { apiVersion?: string; kind?: string }[];
    t.ok(docs.length > 0, `${relative(REPO_ROOT, f)}: ${docs.length} document(s)`);
    for (const d of docs) {
      if (d.kind === 'Kustomization') continue;
      t.same(
        validateObject(d as never).filter((e) => e.includes('no schema')),
        [],
        `${relative(REPO_ROOT, f)}: ${d.kind} has a schema`,
      );
    }
  }
});

for (const [name, dir] of Object.entries(RENDERS)) {
  t.test(`${name}: renders; every object validates against its schema`, async (t) => {
    const docs = renderKustomization(join(DEPLOY, dir));
    const ids = docs.map((d) => `${d.kind}/${d.metadata.name}`);
    t.equal(new Set(ids).size, ids.length, 'kind/name unique');
    const wanted = [
      'Deployment/weft',
      'Service/weft',
      'InferencePool/weft',
      'Deployment/weft-epp',
      'Service/weft-epp',
      'ConfigMap/weft-epp-config',
      'ServiceAccount/weft-epp',
      'Role/weft-epp',
      'RoleBinding/weft-epp',
      'HTTPRoute/weft',
    ];
    for (const want of wanted) t.ok(ids.includes(want), want);
    const errors: Errors = docs.flatMap((d) => validateObject(d));
    t.same(errors, [], `${docs.length} objects, no schema errors`);
    t.ok(
      docs.every((d) => d.metadata.namespace === 'weft'),
      'every object in the namespace weft',
    );
    if (!kubectl) return void t.pass('the same objects as kubectl kustomize renders', { skip: 'kubectl is not installed' });
    const byId = (xs: K8sObject[]) => Object.fromEntries(xs.map((d) => [`${d.kind}/${d.metadata.name}`, d]));
    const theirs = readYamlDocumentsText(execFileSync('kubectl', ['kustomize', join(DEPLOY, dir)], { encoding: 'utf8' })) as K8sObject[];
    t.same(byId(docs), byId(theirs), 'the same objects as kubectl kustomize renders');
  });

  t.test(`${name}: the objects refer to each other consistently`, async (t) => {
    const docs = renderKustomization(join(DEPLOY, dir)) as Obj[];
    const weft = find(docs, 'Deployment', 'weft'),
      epp = find(docs, 'Deployment', 'weft-epp'),
      pool = find(docs, 'InferencePool', 'weft');
    const container = weftContainer(docs);
    const config = loadConfig({ argv: container.args, env: {} });
    const httpPort = container.ports.find((p: Obj) => p.name === 'http');
    t.equal(httpPort.containerPort, config.port, 'the container port is the --port weft listens on');
    t.ok(matches(pool.spec.selector.matchLabels, podLabels(weft)), 'the InferencePool selects the weft pods');
    t.notOk(matches(pool.spec.selector.matchLabels, podLabels(epp)), '… and not the picker');
    t.same(pool.spec.targetPorts, [{ number: config.port }], "the pool targets weft's port");
    const svc = find(docs, 'Service', 'weft');
    t.ok(matches(svc.spec.selector, podLabels(weft)), 'Service weft selects the weft pods');
    t.equal(weft.spec.template.metadata.annotations['prometheus.io/port'], String(config.port), "Prometheus scrapes weft's port");

    // the picker: its Service, the pool's reference to it, its flags, its configuration, its permissions
    const eppSvc = find(docs, 'Service', pool.spec.endpointPickerRef.name);
    t.ok(matches(eppSvc.spec.selector, podLabels(epp)), "endpointPickerRef names the picker's Service");
    const extProc = eppSvc.spec.ports.find((p: Obj) => p.port === pool.spec.endpointPickerRef.port.number);
    const eppContainer = epp.spec.template.spec.containers[0];
    t.equal(eppContainer.ports.find((p: Obj) => p.name === extProc?.targetPort)?.containerPort, 9002, 'the ref port reaches the ext-proc port');
    const flag = (f: string) => eppContainer.args[eppContainer.args.indexOf(f) + 1];
    t.equal(flag('--pool-name'), pool.metadata.name, '--pool-name is the InferencePool');
    const mount = eppContainer.volumeMounts.find((m: Obj) => flag('--config-file').startsWith(m.mountPath + '/'));
    const volume = epp.spec.template.spec.volumes.find((v: Obj) => v.name === mount?.name);
    const cm = find(docs, 'ConfigMap', volume?.configMap?.name);
    t.ok(flag('--config-file').slice(mount.mountPath.length + 1) in cm.data, '--config-file is a key of the mounted ConfigMap');
    const role = find(docs, 'RoleBinding', 'weft-epp');
    const account = { kind: 'ServiceAccount', name: epp.spec.template.spec.serviceAccountName, namespace: 'weft' };
    t.same(role.subjects, [account], "the picker's account is bound");
    const rules = find(docs, 'Role', role.roleRef.name).rules as Obj[];
    for (const [group, resource] of [
      ['', 'pods'],
      ['inference.networking.k8s.io', 'inferencepools'],
    ])
      t.ok(
        rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && ['list', 'watch'].every((v) => r.verbs.includes(v))),
        `the picker may list and watch ${resource}`,
      );
    const route = find(docs, 'HTTPRoute', 'weft');
    const backend = { group: 'inference.networking.k8s.io', kind: 'InferencePool', name: pool.metadata.name };
    t.same(route.spec.rules[0].backendRefs, [backend], "the route's backend is the pool");
    t.equal(route.spec.rules[0].timeouts.request, `${config.requestTimeoutMs / 1000}s`, 'the route waits as long as a request may run');

    // volumes and PVCs that the pods mount exist
    for (const d of docs.filter((x) => (x.spec as Obj | undefined)?.template?.spec)) {
      const pod = d.spec.template.spec;
      const names = (pod.volumes ?? []).map((v: Obj) => v.name);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])])
        for (const m of c.volumeMounts ?? [])
          t.ok(names.includes(m.name), `${d.kind}/${d.metadata.name}: ${c.name} mounts ${m.name}, a volume of the pod`);
      for (const v of pod.volumes ?? []) if (v.persistentVolumeClaim) find(docs, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName);
      for (const c of pod.containers)
        for (const p of [c.readinessProbe, c.livenessProbe].filter(Boolean))
          if (typeof p.httpGet?.port === 'string')
            t.ok(
              c.ports.some((x: Obj) => x.name === p.httpGet.port),
              `probe port ${p.httpGet.port} is named`,
            );
      // shell scripts (the model download) at least parse
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        if (c.command?.[0] !== 'sh' || c.command[1] !== '-c') continue;
        const r = spawnSync('sh', ['-n', '-c', c.command[2]], { encoding: 'utf8' });
        t.equal(r.status, 0, `${d.kind}/${d.metadata.name}: ${c.name}'s script parses ${r.stderr}`);
      }
    }
  });

  t.test(`${name}: weft's flags, probes and metrics meet the picker's and KEDA's contract`, async (t) => {
    const docs = renderKustomization(join(DEPLOY, dir)) as Obj[];
    const weft = find(docs, 'Deployment', 'weft');
    const container = weftContainer(docs);
    const config = loadConfig({ argv: container.args, env: {} });
    t.equal(container.readinessProbe.httpGet.path, '/ready', 'readiness: /ready');
    t.equal(container.livenessProbe.httpGet.path, '/health', 'liveness: /health');
    const app = await buildApp(config); // no engine attached: the model is "loading"
    t.teardown(() => app.close());
    const ready = await app.inject({ url: container.readinessProbe.httpGet.path });
    t.equal(ready.statusCode, 503, 'not ready while the model loads');
    t.equal(ready.json().error.code, 'WEFT_ERR_HTTP_NOT_READY');
    t.equal((await app.inject({ url: container.livenessProbe.httpGet.path })).statusCode, 200, 'alive meanwhile');
    t.ok(weft.spec.template.spec.terminationGracePeriodSeconds * 1000 > config.shutdownTimeoutMs, 'the grace period covers the drain');

    // the metric names the picker reads for these pods exist in weft's /metrics, as gauges
    const cm = find(docs, 'ConfigMap', 'weft-epp-config');
    const epp = parseYaml(cm.data['epp-config.yaml']);
    const errors: Errors = [];
    eppConfigSchema.check(epp, 'EndpointPickerConfig', errors);
    const plugins = new Map<string, Obj>(epp.plugins.map((p: Obj) => [p.name ?? p.type, p]));
    t.equal(plugins.size, epp.plugins.length, 'plugin names unique');
    const refs = [
      ...epp.schedulingProfiles.flatMap((s: Obj) => s.plugins),
      ...epp.dataLayer.sources.flatMap((s: Obj) => [s, ...(s.extractors ?? [])]),
    ];
    for (const r of refs) if (!plugins.has(r.pluginRef)) errors.push(`pluginRef ${r.pluginRef}: no such plugin`);
    const isPicker = (p: Obj) => /-picker$/.test(plugins.get(p.pluginRef)?.type ?? '');
    for (const s of epp.schedulingProfiles) if (s.plugins.filter(isPicker).length > 1) errors.push(`${s.name}: more than one picker`);
    const extractor = [...plugins.values()].find((p) => p.type === 'core-metrics-extractor')!;
    extractorParams.check(extractor.parameters, 'core-metrics-extractor.parameters', errors);
    const producer = [...plugins.values()].find((p) => p.type === 'approx-prefix-cache-producer')!;
    prefixProducerParams.check(producer.parameters, 'approx-prefix-cache-producer.parameters', errors);
    t.same(errors, [], 'the picker configuration validates, every pluginRef resolves');
    t.equal(producer.parameters.blockSizeTokens, config.blockSize, "the picker hashes prompts in weft's block size");
    const metricsSource = [...plugins.values()].find((p) => p.type === 'metrics-data-source')!;
    t.equal(metricsSource.parameters.path, '/metrics');

    const labelKey = extractor.parameters.engineLabelKey;
    const engine = podLabels(weft)[labelKey] ?? extractor.parameters.defaultEngine;
    const mapping: EngineMapping = extractor.parameters.engineConfigs.find((e: Obj) => e.name === engine) ?? (engine === 'vllm' ? BUILTIN_VLLM : {});
    t.ok(mapping.queuedRequestsSpec, `the picker reads these pods as "${engine}"`);
    const families = await weftFamilies(config);
    for (const spec of [mapping.queuedRequestsSpec, mapping.runningRequestsSpec, mapping.kvUsageSpec, mapping.loraSpec, mapping.cacheInfoSpec]) {
      if (!spec) continue;
      t.equal(families.get(spec)?.type, 'gauge', `${spec}: a gauge weft exports (metrics compat: ${config.metricsCompat})`);
    }
    const info = families.get(mapping.cacheInfoSpec ?? '')?.samples[0];
    t.same(info?.labels, { block_size: String(config.blockSize), num_gpu_blocks: String(config.kvCacheBlocks) }, 'cache-config labels as configured');

    // KEDA: it reads metrics weft exports, of these pods' namespace, and scales out before a pod queues
    const scaled = docs.find((d) => d.kind === 'ScaledObject');
    if (!scaled) return;
    t.equal(scaled.spec.scaleTargetRef.name, weft.metadata.name, 'KEDA scales the weft Deployment');
    t.notOk('replicas' in weft.spec, 'the Deployment leaves the replica count to KEDA');
    const trigger = scaled.spec.triggers[0];
    const names = trigger.metadata.query.match(/\b(weft_|vllm:)[a-z_:]+/g) as string[];
    t.ok(names.length > 0);
    for (const n of names) t.equal(families.get(n)?.type, 'gauge', `the query's ${n} is a gauge weft exports`);
    const namespaces = [...trigger.metadata.query.matchAll(/namespace="([^"]*)"/g)].map((m) => m[1]);
    t.ok(namespaces.length > 0 && namespaces.every((n) => n === weft.metadata.namespace), 'the query selects this namespace');
    t.ok(Number(trigger.metadata.threshold) <= config.maxNumSeqs * config.numInstances, 'the threshold is reached before a pod queues');
  });
}

// `kubectl kustomize` output as objects.
function readYamlDocumentsText(text: string): unknown[] {
  return text
    .split(/^---$/m)
    .map((d) => parseYaml(d))
    .filter((d) => d !== null);
}

t.test('the Dockerfiles copy files that exist and ship what the package looks up at run time', async (t) => {
  const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const file of ['Dockerfile', 'Dockerfile.cuda']) {
    const text = readFileSync(join(DEPLOY, 'docker', file), 'utf8').replace(/\\\n/g, ' ');
    const froms = [...text.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    t.same([froms[0], froms.at(-1)], ['node:20-bookworm', 'node:20-bookworm-slim'], `${file}: built on Node 20 / Debian, runs on its slim image`);
    for (const m of text.matchAll(/^COPY\s+(?!--from)(.+)$/gm)) {
      const srcs = m[1].trim().split(/\s+/).slice(0, -1);
      for (const s of srcs) {
        t.ok(existsSync(join(REPO_ROOT, s)), `${file}: COPY ${s} exists`);
        t.notOk(ignored.includes(s), `${file}: ${s} is not in .dockerignore`);
      }
    }
    for (const m of text.matchAll(/^COPY --from=build \/app\/(\S+)/gm))
      t.ok(existsSync(join(REPO_ROOT, m[1])), `${file}: the build output ${m[1]} is where a build puts it`);
    t.match(text, /ENTRYPOINT \["node", "bin\/weft.cjs", "serve"\]/, `${file}: starts weft serve`);
  }
});
