// Structural schemas for the Kubernetes objects under deploy/: the fields these manifests use,
// with their types, required members, enums and name patterns, taken from the Kubernetes API
// reference (core/v1, apps/v1, batch/v1, rbac/v1), Gateway API v1 (HTTPRoute), the Gateway API
// Inference Extension's CRD (InferencePool, inference.networking.k8s.io/v1) and KEDA's
// ScaledObject (keda.sh/v1alpha1). Written by hand (the kubernetes-models package is not
// installed here); an unknown field is an error, as under `kubectl apply --validate=strict`, so a
// misspelt or misplaced field fails the test. Only what the manifests use is described: a new
// field needs its schema entry.

export type Errors = string[];

export interface Schema {
  check(value: unknown, path: string, errors: Errors): void;
}

const typeOf = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);
const leaf = (what: string, ok: (v: unknown) => boolean): Schema => ({
  check(v, path, errors) {
    if (!ok(v)) errors.push(`${path}: expected ${what}, got ${JSON.stringify(v)}`);
  },
});

export const str = leaf('a string', (v) => typeof v === 'string');
export const bool = leaf('a boolean', (v) => typeof v === 'boolean');
export const int = (min = -(2 ** 31), max = 2 ** 31 - 1) =>
  leaf(`an integer in [${min}, ${max}]`, (v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max);
export const pattern = (re: RegExp, what = re.source) => leaf(`a string matching ${what}`, (v) => typeof v === 'string' && re.test(v));
export const oneOf = (...values: readonly (string | number)[]) => leaf(`one of ${values.join(', ')}`, (v) => values.includes(v as string));
export const any: Schema = { check() {} };

// resource quantities: 2, 500m, 1.5, 2Gi, 10G …
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
export const quantity = leaf('a quantity', (v) => (typeof v === 'string' && QUANTITY.test(v)) || Number.isFinite(v));
const PORT = int(1, 65535);
export const intOrString = leaf('an integer or a string', (v) => Number.isInteger(v) || typeof v === 'string');
// DNS-1123 label (container, port-less names), subdomain (most object names), IANA service name (port names)
export const DNS_LABEL = pattern(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a DNS-1123 label');
export const DNS_SUBDOMAIN = pattern(/^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'a DNS-1123 subdomain');
const PORT_NAME = pattern(/^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'an IANA service name');
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
const DURATION = pattern(/^([0-9]{1,5}(h|m|s|ms)){1,4}$/, 'a Gateway API duration');

export function arr(item: Schema, min = 0, max = Infinity): Schema {
  return {
    check(v, path, errors) {
      if (!Array.isArray(v)) return void errors.push(`${path}: expected an array, got ${typeOf(v)}`);
      if (v.length < min || v.length > max) errors.push(`${path}: ${v.length} items, expected ${min}..${max}`);
      v.forEach((x, i) => item.check(x, `${path}[${i}]`, errors));
    },
  };
}

export function map(value: Schema, key?: RegExp): Schema {
  return {
    check(v, path, errors) {
      if (typeOf(v) !== 'object') return void errors.push(`${path}: expected a map, got ${typeOf(v)}`);
      for (const [k, x] of Object.entries(v as object)) {
        if (key && !key.test(k)) errors.push(`${path}: bad key ${JSON.stringify(k)}`);
        value.check(x, `${path}.${k}`, errors);
      }
    },
  };
}

// An object with these fields (keys ending in '!' are required); others are errors. `exactlyOne`:
// of those fields, exactly one must be present (a probe's handler, a volume's source).
interface ObjOptions {
  exactlyOne?: string[];
  rule?: (v: Record<string, unknown>) => string | null; // a cross-field check: the error, or null
}

export function obj(fields: Record<string, Schema>, opts: ObjOptions = {}): Schema {
  const entries = Object.entries(fields).map(([k, s]) => ({ key: k.replace(/!$/, ''), required: k.endsWith('!'), schema: s }));
  return {
    check(v, path, errors) {
      if (typeOf(v) !== 'object') return void errors.push(`${path}: expected an object, got ${typeOf(v)}`);
      const o = v as Record<string, unknown>;
      for (const e of entries) {
        if (o[e.key] === undefined) {
          if (e.required) errors.push(`${path}.${e.key}: required`);
        } else e.schema.check(o[e.key], `${path}.${e.key}`, errors);
      }
      for (const k of Object.keys(o)) if (!entries.some((e) => e.key === k)) errors.push(`${path}.${k}: unknown field`);
      if (opts.exactlyOne && opts.exactlyOne.filter((k) => o[k] !== undefined).length !== 1)
        errors.push(`${path}: exactly one of ${opts.exactlyOne.join(', ')} expected`);
      const why = opts.rule?.(o);
      if (why) errors.push(`${path}: ${why}`);
    },
  };
}

const labels = map(pattern(LABEL_VALUE, 'a label value'), LABEL_KEY);
const metadata = (name: Schema = DNS_SUBDOMAIN) => obj({ 'name!': name, namespace: DNS_LABEL, labels, annotations: map(str, LABEL_KEY) });
const labelSelector = obj({ 'matchLabels!': labels });

// ---- core/v1 pod template ----

const envVar = obj(
  {
    'name!': pattern(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/, 'an env var name'),
    value: str,
    valueFrom: obj(
      {
        fieldRef: obj({ 'fieldPath!': str, apiVersion: str }),
        secretKeyRef: obj({ 'name!': DNS_SUBDOMAIN, 'key!': str, optional: bool }),
        configMapKeyRef: obj({ 'name!': DNS_SUBDOMAIN, 'key!': str, optional: bool }),
      },
      { exactlyOne: ['fieldRef', 'secretKeyRef', 'configMapKeyRef'] },
    ),
  },
  { rule: (o) => (o.value !== undefined && o.valueFrom !== undefined ? 'value and valueFrom are exclusive' : null) },
);
const execAction = obj({ 'command!': arr(str, 1) });
const httpGet = obj({ path: str, 'port!': intOrString, scheme: oneOf('HTTP', 'HTTPS'), host: str });
const probeTimes = { initialDelaySeconds: int(0), periodSeconds: int(1), timeoutSeconds: int(1), failureThreshold: int(1), successThreshold: int(1) };
const probe = obj(
  {
    ...probeTimes,
    httpGet,
    exec: execAction,
    tcpSocket: obj({ 'port!': intOrString }),
    grpc: obj({ 'port!': PORT, service: str }),
  },
  { exactlyOne: ['httpGet', 'exec', 'tcpSocket', 'grpc'] },
);
const lifecycleHandler = obj({ exec: execAction, httpGet, sleep: obj({ 'seconds!': int(1) }) }, { exactlyOne: ['exec', 'httpGet', 'sleep'] });
const resources = obj(
  { requests: map(quantity), limits: map(quantity) },
  {
    rule: (o) => {
      const req = (o.requests ?? {}) as Record<string, unknown>,
        lim = (o.limits ?? {}) as Record<string, unknown>;
      // extended resources (GPUs) cannot be overcommitted: a request must equal its limit
      const bad = Object.keys(req).filter((k) => k.includes('/') && String(req[k]) !== String(lim[k]));
      return bad.length > 0 ? `${bad.join(', ')}: extended resources need requests equal to limits` : null;
    },
  },
);
const container = obj({
  'name!': DNS_LABEL,
  'image!': str,
  imagePullPolicy: oneOf('Always', 'IfNotPresent', 'Never'),
  command: arr(str),
  args: arr(str),
  env: arr(envVar),
  workingDir: str,
  ports: arr(obj({ 'containerPort!': PORT, name: PORT_NAME, protocol: oneOf('TCP', 'UDP', 'SCTP') })),
  resources,
  readinessProbe: probe,
  livenessProbe: probe,
  startupProbe: probe,
  lifecycle: obj({ preStop: lifecycleHandler, postStart: lifecycleHandler }),
  volumeMounts: arr(obj({ 'name!': DNS_LABEL, 'mountPath!': pattern(/^\//, 'an absolute path'), readOnly: bool, subPath: str })),
});
const volume = obj(
  {
    'name!': DNS_LABEL,
    emptyDir: obj({ medium: oneOf('', 'Memory'), sizeLimit: quantity }),
    configMap: obj({ 'name!': DNS_SUBDOMAIN, defaultMode: int(0, 0o777), optional: bool }),
    persistentVolumeClaim: obj({ 'claimName!': DNS_SUBDOMAIN, readOnly: bool }),
    secret: obj({ 'secretName!': DNS_SUBDOMAIN, optional: bool }),
  },
  { exactlyOne: ['emptyDir', 'configMap', 'persistentVolumeClaim', 'secret'] },
);
const toleration = obj({
  key: str,
  operator: oneOf('Exists', 'Equal'),
  value: str,
  effect: oneOf('NoSchedule', 'PreferNoSchedule', 'NoExecute'),
  tolerationSeconds: int(),
});
const podSpec = (restartPolicies: string[]) =>
  obj({
    'containers!': arr(container, 1),
    initContainers: arr(container),
    volumes: arr(volume),
    serviceAccountName: DNS_SUBDOMAIN,
    terminationGracePeriodSeconds: int(0),
    restartPolicy: oneOf(...restartPolicies),
    tolerations: arr(toleration),
    nodeSelector: map(str, LABEL_KEY),
    affinity: any,
    securityContext: any,
  });
const podTemplate = (restartPolicies: string[]) =>
  obj({ metadata: obj({ labels, annotations: map(str, LABEL_KEY) }), 'spec!': podSpec(restartPolicies) });

// ---- the kinds ----

const deployment = obj({
  'apiVersion!': oneOf('apps/v1'),
  'kind!': oneOf('Deployment'),
  'metadata!': metadata(),
  'spec!': obj(
    {
      replicas: int(0),
      'selector!': labelSelector,
      'template!': podTemplate(['Always']),
      minReadySeconds: int(0),
      revisionHistoryLimit: int(0),
      strategy: obj({ type: oneOf('RollingUpdate', 'Recreate'), rollingUpdate: obj({ maxSurge: intOrString, maxUnavailable: intOrString }) }),
    },
    {
      // the API refuses a selector that does not select the template's own pods
      rule: (s) => {
        const sel = (s.selector as { matchLabels?: Record<string, string> })?.matchLabels ?? {};
        const tpl = (s.template as { metadata?: { labels?: Record<string, string> } })?.metadata?.labels ?? {};
        return Object.entries(sel).every(([k, v]) => tpl[k] === v) ? null : 'selector does not match the template labels';
      },
    },
  ),
});
const job = obj({
  'apiVersion!': oneOf('batch/v1'),
  'kind!': oneOf('Job'),
  'metadata!': metadata(),
  'spec!': obj({
    'template!': podTemplate(['OnFailure', 'Never']),
    backoffLimit: int(0),
    completions: int(1),
    parallelism: int(0),
    activeDeadlineSeconds: int(1),
    ttlSecondsAfterFinished: int(0),
  }),
});
const servicePort = obj({
  name: DNS_LABEL,
  'port!': PORT,
  targetPort: intOrString,
  protocol: oneOf('TCP', 'UDP', 'SCTP'),
  appProtocol: str,
  nodePort: PORT,
});
const service = obj({
  'apiVersion!': oneOf('v1'),
  'kind!': oneOf('Service'),
  // Service names are DNS-1035 labels (they become DNS names and env vars)
  'metadata!': metadata(pattern(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a DNS-1035 label')),
  'spec!': obj(
    {
      type: oneOf('ClusterIP', 'NodePort', 'LoadBalancer'),
      selector: map(pattern(LABEL_VALUE), LABEL_KEY),
      'ports!': arr(servicePort, 1),
    },
    {
      rule: (s) => ((s.ports as unknown[]).length > 1 && (s.ports as { name?: string }[]).some((p) => !p.name) ? 'several ports need names' : null),
    },
  ),
});
const configMap = obj({ 'apiVersion!': oneOf('v1'), 'kind!': oneOf('ConfigMap'), 'metadata!': metadata(), data: map(str, /^[-._a-zA-Z0-9]+$/) });
const serviceAccount = obj({ 'apiVersion!': oneOf('v1'), 'kind!': oneOf('ServiceAccount'), 'metadata!': metadata() });
const pvc = obj({
  'apiVersion!': oneOf('v1'),
  'kind!': oneOf('PersistentVolumeClaim'),
  'metadata!': metadata(),
  'spec!': obj({
    'accessModes!': arr(oneOf('ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'), 1),
    'resources!': obj({ 'requests!': obj({ 'storage!': quantity }) }),
    storageClassName: str,
    volumeMode: oneOf('Filesystem', 'Block'),
  }),
});
const role = obj({
  'apiVersion!': oneOf('rbac.authorization.k8s.io/v1'),
  'kind!': oneOf('Role'),
  'metadata!': metadata(),
  'rules!': arr(obj({ apiGroups: arr(str), resources: arr(str), 'verbs!': arr(str, 1), resourceNames: arr(str) })),
});
const roleBinding = obj({
  'apiVersion!': oneOf('rbac.authorization.k8s.io/v1'),
  'kind!': oneOf('RoleBinding'),
  'metadata!': metadata(),
  subjects: arr(
    obj(
      { 'kind!': oneOf('ServiceAccount', 'User', 'Group'), 'name!': str, namespace: DNS_LABEL, apiGroup: str },
      {
        rule: (o) => (o.kind === 'ServiceAccount' && !o.namespace ? 'a ServiceAccount subject needs a namespace' : null),
      },
    ),
  ),
  'roleRef!': obj({ 'apiGroup!': oneOf('rbac.authorization.k8s.io'), 'kind!': oneOf('Role', 'ClusterRole'), 'name!': str }),
});

// InferencePool, inference.networking.k8s.io/v1 (the extension's CRD: api/v1/inferencepool_types.go)
const group = pattern(/^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'an API group');
const kindName = pattern(/^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/, 'a kind');
const inferencePool = obj({
  'apiVersion!': oneOf('inference.networking.k8s.io/v1'),
  'kind!': oneOf('InferencePool'),
  'metadata!': metadata(),
  'spec!': obj(
    {
      'selector!': obj({ 'matchLabels!': labels }),
      'targetPorts!': arr(obj({ 'number!': PORT }), 1, 8),
      appProtocol: oneOf('http', 'kubernetes.io/h2c'),
      'endpointPickerRef!': obj(
        {
          group,
          kind: kindName,
          'name!': pattern(/^.{1,253}$/),
          port: obj({ 'number!': PORT }),
          failureMode: oneOf('FailOpen', 'FailClose'),
        },
        { rule: (o) => ((o.kind ?? 'Service') === 'Service' && o.port === undefined ? 'port is required when kind is Service' : null) },
      ),
    },
    {
      rule: (s) => {
        const ports = ((s.targetPorts ?? []) as { number: number }[]).map((p) => p.number);
        return new Set(ports).size === ports.length ? null : 'targetPorts numbers must be unique';
      },
    },
  ),
});

// HTTPRoute, gateway.networking.k8s.io/v1
const httpRoute = obj({
  'apiVersion!': oneOf('gateway.networking.k8s.io/v1'),
  'kind!': oneOf('HTTPRoute'),
  'metadata!': metadata(),
  'spec!': obj({
    parentRefs: arr(obj({ group, kind: kindName, 'name!': str, namespace: DNS_LABEL, sectionName: str, port: PORT }), 0, 32),
    hostnames: arr(str),
    rules: arr(
      obj({
        name: str,
        matches: arr(
          obj({
            path: obj({ type: oneOf('Exact', 'PathPrefix', 'RegularExpression'), value: pattern(/^\//, 'an absolute path') }),
            headers: arr(any),
            queryParams: arr(any),
            method: oneOf('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'),
          }),
          0,
          64,
        ),
        filters: arr(any),
        backendRefs: arr(obj({ group, kind: kindName, 'name!': str, namespace: DNS_LABEL, port: PORT, weight: int(0, 1000000) })),
        timeouts: obj({ request: DURATION, backendRequest: DURATION }),
      }),
      0,
      16,
    ),
  }),
});

// ScaledObject, keda.sh/v1alpha1; trigger metadata values are strings
const hpaRules = obj({
  stabilizationWindowSeconds: int(0, 3600),
  selectPolicy: oneOf('Max', 'Min', 'Disabled'),
  policies: arr(obj({ 'type!': oneOf('Pods', 'Percent'), 'value!': int(1), 'periodSeconds!': int(1, 1800) })),
});
const scaledObject = obj({
  'apiVersion!': oneOf('keda.sh/v1alpha1'),
  'kind!': oneOf('ScaledObject'),
  'metadata!': metadata(),
  'spec!': obj(
    {
      'scaleTargetRef!': obj({ 'name!': str, kind: str, apiVersion: str, envSourceContainerName: str }),
      pollingInterval: int(1),
      cooldownPeriod: int(0),
      initialCooldownPeriod: int(0),
      idleReplicaCount: int(0),
      minReplicaCount: int(0),
      maxReplicaCount: int(1),
      advanced: obj({
        restoreToOriginalReplicaCount: bool,
        horizontalPodAutoscalerConfig: obj({ name: str, behavior: obj({ scaleUp: hpaRules, scaleDown: hpaRules }) }),
      }),
      'triggers!': arr(
        obj(
          {
            'type!': str,
            name: str,
            metricType: oneOf('AverageValue', 'Value', 'Utilization'),
            'metadata!': map(str),
            authenticationRef: obj({ 'name!': str, kind: str }),
            useCachedMetrics: bool,
          },
          {
            rule: (t) => {
              if (t.type !== 'prometheus') return null;
              const missing = ['serverAddress', 'query', 'threshold'].filter((k) => !(k in ((t.metadata ?? {}) as object)));
              return missing.length > 0 ? `a prometheus trigger needs ${missing.join(', ')}` : null;
            },
          },
        ),
        1,
      ),
    },
    {
      rule: (s) => (Number(s.minReplicaCount ?? 0) > Number(s.maxReplicaCount ?? 100) ? 'minReplicaCount above maxReplicaCount' : null),
    },
  ),
});

export const SCHEMAS: Record<string, Schema> = {
  'apps/v1/Deployment': deployment,
  'batch/v1/Job': job,
  'v1/Service': service,
  'v1/ConfigMap': configMap,
  'v1/ServiceAccount': serviceAccount,
  'v1/PersistentVolumeClaim': pvc,
  'rbac.authorization.k8s.io/v1/Role': role,
  'rbac.authorization.k8s.io/v1/RoleBinding': roleBinding,
  'inference.networking.k8s.io/v1/InferencePool': inferencePool,
  'gateway.networking.k8s.io/v1/HTTPRoute': httpRoute,
  'keda.sh/v1alpha1/ScaledObject': scaledObject,
};

// The errors of one object against the schema of its apiVersion and kind (unknown kinds included).
export function validateObject(o: { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown } }): Errors {
  const id = `${String(o.apiVersion)}/${String(o.kind)}`;
  const schema = SCHEMAS[id];
  if (!schema) return [`${id}: no schema (a kind these manifests do not use yet)`];
  const errors: Errors = [];
  schema.check(o, `${String(o.kind)}/${String(o.metadata?.name)}`, errors);
  return errors;
}
