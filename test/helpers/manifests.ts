// The Kubernetes manifests under deploy/kubernetes/, loaded once for the unit
// test that validates them and for the simulations that run their commands:
// both take the commands from here, so what is tested is what is deployed.
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { ROOT } from './cli';

export const MANIFEST_DIR = path.join(ROOT, 'deploy/kubernetes');

export interface K8sObject { apiVersion: string; kind: string; metadata: { name: string; [k: string]: unknown }; [k: string]: any }

export function loadManifests(): Array<{ file: string; doc: K8sObject }> {
  const out: Array<{ file: string; doc: K8sObject }> = [];
  for (const f of fs.readdirSync(MANIFEST_DIR).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const doc of yaml.loadAll(fs.readFileSync(path.join(MANIFEST_DIR, f), 'utf8'))) {
      if (doc) out.push({ file: f, doc: doc as K8sObject });
    }
  }
  return out;
}

export function find(kind: string, name: string): K8sObject {
  const hit = loadManifests().find((m) => m.doc.kind === kind && m.doc.metadata.name === name);
  if (!hit) throw new Error(`no ${kind} ${name} in ${MANIFEST_DIR}`);
  return hit.doc;
}

/** A container of a workload with its mounts as { mountPath: volume name }. */
export function container(kind: string, name: string) {
  const w = find(kind, name);
  const c = w.spec.template.spec.containers[0];
  const mounts: Record<string, string> = {};
  for (const m of c.volumeMounts ?? []) mounts[m.mountPath] = m.name;
  return { workload: w, container: c, mounts, argv: [...(c.command ?? []), ...(c.args ?? [])] as string[] };
}

/** The sweep Job: its pod's argv (a /bin/sh -c script), shard count and image. */
export function sweepJob() {
  const c = container('Job', 'halfopen-sweep');
  return { ...c, shards: c.workload.spec.completions as number, image: c.container.image as string };
}

/** The merge Job's argv. */
export function mergeJob() { return container('Job', 'halfopen-merge'); }

/** The serve DaemonSet's container. */
export function serveDaemon() { return container('DaemonSet', 'halfopen-serve'); }

/** A ConfigMap's data. */
export const configMapData = (name: string): Record<string, string> => find('ConfigMap', name).data;

/**
 * The argv with each mount path replaced by a local directory: how a
 * simulation without containers runs a pod's command. Nothing else changes.
 */
export function relocate(argv: string[], dirs: Record<string, string>): string[] {
  return argv.map((a) => Object.entries(dirs).reduce((s, [from, to]) => s.split(`${from}/`).join(`${to}/`), a));
}
