// deploy/kubernetes/: every object validates against the Kubernetes schemas
// (kubernetes-models with @kubernetes-models/validate), and the commands are
// the ones the scale-out simulation runs (both read them from test/helpers/manifests).
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/daemon/config';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { MANIFEST_DIR, configMapData, loadManifests, mergeJob, relocate, serveDaemon, sweepJob } from '../helpers/manifests';
import { scaleOutCommands } from '../helpers/scale-out';

type ModelClass = new (d: any) => { validate(): void };
// kubernetes-models is ESM only; this tree compiles to CommonJS, whose import() would become require().
const esm = new Function('m', 'return import(m)') as (m: string) => Promise<Record<string, ModelClass>>;
const MODELS: Record<string, ModelClass> = {};
let Job: ModelClass;

describe('Kubernetes manifests', () => {
  const all = loadManifests();
  before(async () => {
    const [core, batch, apps] = await Promise.all([esm('kubernetes-models/v1'), esm('kubernetes-models/batch/v1'), esm('kubernetes-models/apps/v1')]);
    Object.assign(MODELS, {
      'v1/ConfigMap': core.ConfigMap, 'v1/PersistentVolumeClaim': core.PersistentVolumeClaim, 'v1/Service': core.Service,
      'batch/v1/Job': batch.Job, 'apps/v1/DaemonSet': apps.DaemonSet,
    });
    Job = batch.Job;
  });

  test('there are manifests to check', () => assert.ok(all.length >= 6, `${all.length} objects`));
  for (const { file, doc } of all) {
    test(`${file}: ${doc.kind} ${doc.metadata.name} validates against the ${doc.apiVersion} schema`, () => {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      assert.ok(Model, `no schema model for ${doc.apiVersion} ${doc.kind}`);
      new Model(doc).validate();
    });
  }

  test('the schemas are enforced: a wrong type or a missing required field fails', () => {
    const job = structuredClone(sweepJob().workload);
    job.spec.completions = 'four';
    assert.throws(() => new Job(job).validate());
    const bare = structuredClone(sweepJob().workload);
    delete bare.spec.template.spec.containers[0].name;
    assert.throws(() => new Job(bare).validate());
  });

  test('the sweep is an Indexed Job with N shards, one pod per index, on the host network, with four capabilities', () => {
    const { workload: j, container: c, mounts } = sweepJob();
    assert.equal(j.spec.completionMode, 'Indexed');
    assert.equal(j.spec.parallelism, j.spec.completions);
    assert.ok(j.spec.backoffLimitPerIndex >= 1);
    assert.equal(j.spec.template.spec.hostNetwork, true);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_RAW', 'NET_ADMIN', 'BPF', 'PERFMON'] });
    assert.equal(c.securityContext.privileged, undefined);
    assert.deepEqual(mounts, { '/etc/halfopen': 'targets', '/data': 'results' });
    assert.match(configMapData('halfopen-targets')['targets.txt'], /^198\.18\.0\.0\/16$/m);
  });

  test('each sweep pod writes shard-$INDEX results, run record and checkpoint, and resumes a checkpoint it finds', () => {
    const { argv, shards } = sweepJob();
    assert.deepEqual(argv.slice(0, 2), ['/bin/sh', '-c']);
    const script = argv[2];
    assert.match(script, new RegExp(`--shards ${shards} `));
    assert.match(script, /--seed \d+/);
    assert.doesNotMatch(script, /--shard-index|\$\(\(/, 'the index comes from JOB_COMPLETION_INDEX, no arithmetic');
    for (const f of ['-o "/data/shard-$JOB_COMPLETION_INDEX.ndjson"', '--metadata-file "/data/shard-$JOB_COMPLETION_INDEX.json"',
      '--checkpoint "/data/shard-$JOB_COMPLETION_INDEX.checkpoint"', '--resume "/data/shard-$JOB_COMPLETION_INDEX.checkpoint"', '--format ndjson']) {
      assert.ok(script.includes(f), `${f} in ${script}`);
    }
  });

  test('the merge Job lists the run record of every shard 0..N-1, once', () => {
    const { argv } = mergeJob();
    const { shards } = sweepJob();
    assert.equal(argv[0], 'merge');
    assert.deepEqual(argv.filter((a) => a.endsWith('.json')), Array.from({ length: shards }, (_, i) => `/data/shard-${i}.json`));
  });

  test('the simulation runs exactly the manifests\' commands, with the mount paths moved to local directories', () => {
    const dirs = { '/data': '/tmp/x/data', '/etc/halfopen': '/tmp/x/etc' };
    const sim = scaleOutCommands(dirs);
    // The expectation comes from the manifest files' own text, not from the
    // helpers that build the simulation: the mount paths are replaced in the
    // YAML source, which is then parsed afresh.
    const fromText = (file: string, kind: string, name: string, moved: boolean) => {
      let text = fs.readFileSync(path.join(MANIFEST_DIR, file), 'utf8');
      if (moved) text = text.replaceAll('/data/', '/tmp/x/data/').replaceAll('/etc/halfopen/', '/tmp/x/etc/');
      const doc = yaml.loadAll(text).find((d: any) => d?.kind === kind && d.metadata.name === name) as any;
      const c = doc.spec.template.spec.containers[0];
      return { argv: [...(c.command ?? []), ...(c.args ?? [])] as string[], doc };
    };
    const sweepText = fromText('sweep.yaml', 'Job', 'halfopen-sweep', true);
    assert.deepEqual(sim.sweep, sweepText.argv);
    assert.deepEqual(sim.merge, fromText('merge.yaml', 'Job', 'halfopen-merge', true).argv);
    assert.equal(sim.shards, sweepText.doc.spec.completions);
    assert.ok(sim.shards >= 2, `a scale-out of ${sim.shards} shard(s)`);
    const targets = (yaml.loadAll(fs.readFileSync(path.join(MANIFEST_DIR, 'sweep.yaml'), 'utf8')).find((d: any) => d?.kind === 'ConfigMap' && d.metadata.name === 'halfopen-targets') as any).data['targets.txt'];
    assert.equal(sim.targets, targets);
    assert.ok(sim.targets.trim().length > 0, 'the ConfigMap lists targets');
    // What moved: every mount path, and only those (the rest of each word is as deployed).
    assert.ok(sim.sweep[2].includes('-o "/tmp/x/data/shard-$JOB_COMPLETION_INDEX.ndjson"'), sim.sweep[2]);
    assert.ok(sim.sweep[2].includes('-iL /tmp/x/etc/targets.txt'), sim.sweep[2]);
    assert.ok(sim.merge.includes('/tmp/x/data/shard-0.json'), sim.merge.join(' '));
    for (const a of [...sim.sweep, ...sim.merge]) assert.doesNotMatch(a, /(^|[^x])\/data\/|\/etc\/halfopen\//, `a mount path left in ${a}`);
    const unmoved = fromText('sweep.yaml', 'Job', 'halfopen-sweep', false).argv;
    assert.equal(sim.sweep.length, unmoved.length);
    sim.sweep.forEach((a, i) => assert.equal(a.replaceAll('/tmp/x/data/', '/data/').replaceAll('/tmp/x/etc/', '/etc/halfopen/'), unmoved[i]));
    // Relocating touches the mount paths and nothing else.
    assert.deepEqual(relocate(sweepJob().argv, {}), unmoved);
  });

  test('the sidecar: serve with its ConfigMap, liveness and readiness on /healthz, a Service and scrape annotations for /metrics', () => {
    const { workload: d, container: c, argv } = serveDaemon();
    assert.deepEqual(argv, ['serve', '--config', '/etc/halfopen/serve.yaml']);
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/healthz');
    assert.deepEqual(c.securityContext.capabilities.add, ['NET_RAW', 'NET_ADMIN', 'BPF', 'PERFMON']);
    const ann = d.spec.template.metadata.annotations;
    assert.equal(ann['prometheus.io/scrape'], 'true');
    assert.equal(ann['prometheus.io/path'], '/metrics');
    const svc = loadManifests().find((m) => m.doc.kind === 'Service')!.doc;
    assert.deepEqual(svc.spec.selector, d.spec.selector.matchLabels);
    assert.equal(String((svc.metadata.annotations as Record<string, string>)['prometheus.io/port']), ann['prometheus.io/port']);
    // The config in the ConfigMap is one serve accepts.
    const cfg = parseConfig(configMapData('halfopen-serve')['serve.yaml']);
    assert.equal(cfg.listen.http?.port, Number(ann['prometheus.io/port']));
    assert.equal(cfg.backends.length, 3);
  });

  test('the sidecar runs with the systemd unit\'s environment (young generation, malloc arenas, mmap threshold)', () => {
    const unit = fs.readFileSync(path.join(MANIFEST_DIR, '../systemd/halfopen.service'), 'utf8');
    const want = Object.fromEntries([...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
    assert.ok(want.NODE_OPTIONS && want.MALLOC_ARENA_MAX && want.MALLOC_MMAP_THRESHOLD_, 'the unit sets all three');
    const env = Object.fromEntries((serveDaemon().container.env as Array<{ name: string; value: string }>).map((e) => [e.name, String(e.value)]));
    for (const [k, v] of Object.entries(want)) assert.equal(env[k], v, k);
  });
});
