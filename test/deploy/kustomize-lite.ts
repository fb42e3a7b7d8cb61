// Renders the Kustomize directories under deploy/kustomize the way `kubectl kustomize` does, for
// the subset of Kustomize they use: resources (files, or directories with a kustomization.yaml),
// namespace, images, and JSON 6902 patches with a kind/name target. Anything else in a
// kustomization.yaml is refused, so the manifests cannot silently outgrow this renderer; where
// kubectl is installed, the test also compares this output with kubectl's.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { parseAllDocuments } from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const ALLOWED_KEYS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass']);

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  resources?: string[];
  namespace?: string;
  images?: { name: string; newName?: string; newTag?: string }[];
  patches?: { target: { kind: string; name: string }; patch: string }[];
}

// Every document of a YAML file; a document with errors throws, naming the file.
export function readYamlDocuments(path: string): unknown[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d, i) => {
      if (d.errors.length > 0) throw new Error(`${path} document ${i}: ${d.errors[0].message}`);
      return d.toJS();
    })
    .filter((d) => d !== null);
}

function readKustomization(dir: string): Kustomization {
  const [k] = readYamlDocuments(join(dir, 'kustomization.yaml')) as Kustomization[];
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization') throw new Error(`${dir}: not a v1beta1 Kustomization`);
  for (const key of Object.keys(k))
    if (!ALLOWED_KEYS.has(key)) throw new Error(`${dir}/kustomization.yaml: ${key} is not supported by this renderer`);
  return k;
}

// JSON pointer segments (RFC 6901: ~1 is '/', ~0 is '~').
const pointer = (path: string) =>
  path
    .split('/')
    .slice(1)
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));

// One RFC 6902 operation (add, replace, remove) on `doc`, in place.
function applyOp(doc: unknown, op: { op: string; path: string; value?: unknown }): void {
  const keys = pointer(op.path);
  const last = keys.pop()!;
  let parent = doc as Record<string, unknown> | unknown[];
  for (const k of keys) {
    const next = Array.isArray(parent) ? parent[Number(k)] : parent[k];
    if (next === undefined || next === null || typeof next !== 'object') throw new Error(`patch ${op.op} ${op.path}: no such path`);
    parent = next as Record<string, unknown> | unknown[];
  }
  const value = structuredClone(op.value);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    const isInRange = Number.isInteger(i) && i >= 0 && (op.op === 'add' ? i <= parent.length : i < parent.length);
    if (!isInRange) throw new Error(`patch ${op.op} ${op.path}: bad index`);
    if (op.op === 'add') parent.splice(i, 0, value);
    else if (op.op === 'replace') parent[i] = value;
    else if (op.op === 'remove') parent.splice(i, 1);
    else throw new Error(`patch op ${op.op} is not supported`);
    return;
  }
  if (op.op !== 'add' && !(last in parent)) throw new Error(`patch ${op.op} ${op.path}: no such member`);
  if (op.op === 'add' || op.op === 'replace') parent[last] = value;
  else if (op.op === 'remove') delete parent[last];
  else throw new Error(`patch op ${op.op} is not supported`);
}

function podSpecs(o: K8sObject): Record<string, unknown>[] {
  const spec = o.spec as { template?: { spec?: Record<string, unknown> } } | undefined;
  return spec?.template?.spec ? [spec.template.spec] : [];
}

// The image transformer: containers whose image (without tag or digest) is `name`.
function setImages(docs: K8sObject[], images: NonNullable<Kustomization['images']>): void {
  for (const doc of docs)
    for (const pod of podSpecs(doc)) {
      for (const c of [...((pod.containers ?? []) as { image: string }[]), ...((pod.initContainers ?? []) as { image: string }[])]) {
        const m = /^([^@:]+(?::\d+\/[^@:]+)?)(?::([^@]+))?(@.+)?$/.exec(c.image);
        const rule = m && images.find((x) => x.name === m[1]);
        if (m && rule) c.image = `${rule.newName ?? m[1]}${rule.newTag ? `:${rule.newTag}` : m[2] ? `:${m[2]}` : ''}`;
      }
    }
}

// The namespace transformer: every namespaced object, and RoleBinding subjects that name one of
// the rendered ServiceAccounts (what kubectl kustomize does with such subjects).
function setNamespace(docs: K8sObject[], namespace: string): void {
  const accounts = new Set(docs.filter((d) => d.kind === 'ServiceAccount').map((d) => d.metadata.name));
  for (const doc of docs) {
    if (!CLUSTER_SCOPED.has(doc.kind)) doc.metadata.namespace = namespace;
    if (doc.kind === 'RoleBinding' || doc.kind === 'ClusterRoleBinding') {
      for (const s of (doc.subjects ?? []) as { kind: string; name: string; namespace?: string }[])
        if (s.kind === 'ServiceAccount' && accounts.has(s.name)) s.namespace = namespace;
    }
  }
}

export function renderKustomization(dir: string): K8sObject[] {
  const k = readKustomization(dir);
  const docs: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dir, r);
    if (!existsSync(path)) throw new Error(`${dir}: resource ${r} not found`);
    docs.push(...(statSync(path).isDirectory() ? renderKustomization(path) : (readYamlDocuments(path) as K8sObject[])));
  }
  for (const p of k.patches ?? []) {
    const targets = docs.filter((d) => d.kind === p.target.kind && d.metadata.name === p.target.name);
    if (targets.length === 0) throw new Error(`${dir}: patch target ${p.target.kind}/${p.target.name} not found`);
    const [ops] = parseAllDocuments(p.patch).map((d) => d.toJS()) as { op: string; path: string; value?: unknown }[][];
    for (const t of targets) for (const op of ops) applyOp(t, op);
  }
  if (k.images) setImages(docs, k.images);
  if (k.namespace) setNamespace(docs, k.namespace);
  return docs;
}
