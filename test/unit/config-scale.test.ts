// Unit tier: serve's config at scale. The JSON fast path reads every JSON
// file as js-yaml does (or leaves it to js-yaml), a JSON and a YAML file of
// one document give one config and one error, the off-thread reader returns
// what loadConfig returns (also when it reuses the unchanged backends of the
// previous list) with the timing and label sets shared, the reader keeps
// only what changed (a sink for loadConfig, a delta matching names by place
// first) with the answer a map of every name gives, and IPv4 parsing by character codes accepts what
// the split-and-pattern parser did. Properties print fast-check's seed on
// failure; rerun one with HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import util from 'node:util';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import yaml from 'js-yaml';
import { BackendConfig, ConfigDelta, ConfigDigest, ServeConfig, backendSharer, loadConfig, loadConfigOffThread, parseConfig, parseJsonAsYaml, previousIndex } from '../../src/daemon/config';
import { parseIPv4, parseAddress } from '../../src/targets/address';
import { sameConfig } from '../../src/daemon/backend';

const fcParams = (runs = 300): fc.Parameters<unknown> => {
  const seed = process.env.HALFOPEN_FC_SEED, p = process.env.HALFOPEN_FC_PATH;
  return { numRuns: runs, ...(seed ? { seed: Number(seed) } : {}), ...(p ? { path: p } : {}) };
};

/** The IPv4 parser as it was (split on dots, one pattern per octet): the reference. */
function referenceV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(p)) return null;
    const o = Number(p);
    if (o > 255) return null;
    n = n * 256 + o;
  }
  return 0xffff_0000_0000n | BigInt(n);
}

/** A config with every backend as a plain object of all its fields, its own and those it shares (backendSharer). */
const flat = (cfg: ServeConfig | null): unknown => cfg && { ...cfg, backends: cfg.backends.map(flatBackend) };
function flatBackend(b: BackendConfig): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k in b) o[k] = (b as unknown as Record<string, unknown>)[k];
  return o;
}

const yamlLoad = (text: string): { doc: unknown } | { error: string } => {
  try {
    return { doc: yaml.load(text, { schema: yaml.CORE_SCHEMA }) };
  } catch (e) {
    return { error: (e as Error).message };
  }
};

const outcome = (f: () => unknown): { ok: unknown } | { error: string } => {
  try {
    return { ok: f() };
  } catch (e) {
    return { error: (e as Error).message };
  }
};

describe('IPv4 by character codes', () => {
  test('the same answer as the split-and-pattern parser, for dotted strings and anything else', () => {
    const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('', '00', '01', '010', '1a', ' 1', '+1', '0x1', '٣'), fc.stringMatching(/^[0-9]{0,5}$/));
    const dotted = fc.array(octet, { minLength: 0, maxLength: 6 }).chain((parts) => fc.constantFrom('.', '..', ',').map((sep) => parts.join(sep)));
    fc.assert(fc.property(fc.oneof(dotted, fc.string(), fc.stringMatching(/^[0-9.]{0,20}$/)), (s) => {
      assert.equal(parseIPv4(s), referenceV4(s), JSON.stringify(s));
      if (!s.includes(':')) assert.equal(parseAddress(s), referenceV4(s), JSON.stringify(s));
    }), fcParams(2000));
  });

  test('examples', () => {
    assert.equal(parseIPv4('198.18.0.1'), 0xffff_c612_0001n);
    assert.equal(parseIPv4('255.255.255.255'), 0xffff_ffff_ffffn);
    for (const bad of ['256.1.1.1', '1.2.3', '1.2.3.4.', '.1.2.3', '01.2.3.4', '1.2.3.4 ', '1..2.3', '1234.1.1.1', '']) assert.equal(parseIPv4(bad), null, bad);
  });
});

describe('JSON files through JSON.parse', () => {
  // Documents as a config could hold them: mappings of strings, numbers, booleans, null and lists.
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie('v'), { maxLength: 4 }), tie('m')),
    m: fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('name', 'host', 'port', '__proto__', 'a b', 'é', '"q"', 'x\\y')), tie('v'), { maxKeys: 4 }),
  }));

  test('a document it reads is the one js-yaml reads', () => {
    fc.assert(fc.property(value.m, fc.constantFrom(undefined, 0, 1, 2), (doc, indent) => {
      const text = JSON.stringify(doc, null, indent);
      const fast = parseJsonAsYaml(text);
      const slow = yamlLoad(text);
      if (fast === undefined) return;
      assert.ok('doc' in slow, `JSON.parse read what js-yaml refuses: ${text}: ${'error' in slow ? slow.error : ''}`);
      assert.deepEqual(fast, slow.doc, text);
    }), fcParams());
  });

  test('it reads every JSON text of a mapping whose numbers YAML reads the same', () => {
    fc.assert(fc.property(value.m, (doc) => {
      const text = JSON.stringify(doc);
      const hasOdd = /-0(?![.\d])|e[+-]?\d{3}/i.test(text);
      if (!hasOdd) assert.notEqual(parseJsonAsYaml(text), undefined, text);
    }), fcParams());
  });

  test('a key given twice, -0 and out-of-range numbers are left to js-yaml', () => {
    assert.equal(parseJsonAsYaml('{"a": 1, "a": 2}'), undefined);
    assert.equal(parseJsonAsYaml('{"b": [{"x": 1, "y": 2, "x": 3}]}'), undefined);
    assert.equal(parseJsonAsYaml('{"a": -0.0}'), undefined);
    assert.equal(parseJsonAsYaml('{"a": 1e400}'), undefined);
    assert.equal(parseJsonAsYaml('{"a": "x\\":y"}') !== undefined, true, 'a colon inside a string is no key');
    assert.equal(parseJsonAsYaml('a: 1'), undefined, 'YAML');
    assert.equal(parseJsonAsYaml('[1]'), undefined, 'not a mapping');
    assert.throws(() => parseConfig('{"backends": [{"host": "198.18.0.1", "port": 80, "port": 81}]}', 'x.json'), /x\.json: not valid YAML: duplicated mapping key/);
  });

  // Backends with fields right and wrong: the same config, or the same error, from JSON and from YAML.
  const backend = fc.record({
    name: fc.oneof(fc.constantFrom('a', 'b', 'web-1', 'bad name', ''), fc.integer({ min: 0, max: 3 }).map((i) => `b${i}`)),
    host: fc.constantFrom('198.18.0.1', '198.18.0.2', '2001:2::1', '[2001:2::1]', 'db.example', '', '300.1.1.1'),
    port: fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.constantFrom('80', 80.5)),
    rise: fc.integer({ min: 0, max: 1001 }),
    interval: fc.constantFrom('1s', '500ms', 2000, '0s', 'soon'),
    timeout: fc.constantFrom('200ms', '3s'),
    labels: fc.dictionary(fc.constantFrom('dc', 'rack', '9x', 'backend'), fc.oneof(fc.string({ maxLength: 3 }), fc.integer(), fc.boolean())),
    weight: fc.integer({ min: -1, max: 300 }),
    mark: fc.oneof(fc.integer({ min: -1, max: 0x10 }), fc.constantFrom('0x10', 'x')),
  }, { requiredKeys: ['host'] });
  const config = fc.record({
    defaults: fc.record({ interval: fc.constantFrom('1s', '2s'), jitter: fc.constantFrom(0, 0.6, '10%') }, { requiredKeys: [] }),
    allow_duplicates: fc.boolean(),
    backends: fc.array(backend, { minLength: 1, maxLength: 6 }),
  }, { requiredKeys: ['backends'] });

  test('a JSON file and a YAML file of one document: one config, or one error', () => {
    fc.assert(fc.property(config, (doc) => {
      const text = yaml.dump(doc, { flowLevel: 2 });
      // js-yaml's flow style can dump a scalar it then reads otherwise ("A:]" inside braces): only one document counts.
      let same = false;
      try { same = util.isDeepStrictEqual(yaml.load(text, { schema: yaml.CORE_SCHEMA }), JSON.parse(JSON.stringify(doc))); } catch { same = false; }
      fc.pre(same);
      const fromJson = outcome(() => parseConfig(JSON.stringify(doc, null, 1), 'serve.cfg'));
      const fromYaml = outcome(() => parseConfig(text, 'serve.cfg'));
      assert.deepEqual(fromJson, fromYaml);
    }), fcParams());
  });
});

describe('the off-thread reader', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-cfg-'));
  const write = (name: string, text: string) => { const f = path.join(dir, name); fs.writeFileSync(f, text); return f; };
  const many = (n: number) => `defaults: { interval: 1s, timeout: 500ms }\nbackends:\n${Array.from({ length: n }, (_, i) =>
    `  - { name: b${i}, host: 198.18.${(i >> 8) & 255}.${i & 255}, port: ${80 + (i >> 16)}${i % 7 === 3 ? ', rise: 3, labels: { rack: r1 }' : ''} }\n`).join('')}`;

  test('returns what loadConfig returns, over several slices of backends', async () => {
    for (const n of [1, 5000, 5001, 12_345]) {
      const f = write(`many-${n}.yaml`, many(n));
      assert.deepEqual(flat(await loadConfigOffThread(f)), loadConfig(f), `${n} backends`);
    }
  });

  test('backends of one timing share it, and equal label sets are one object; what they read and compare is unchanged', async () => {
    const f = write('shared.yaml', many(700));
    const off = (await loadConfigOffThread(f))!.backends, plain = loadConfig(f).backends;
    const [b0, b1, b3, b10] = [off[0], off[1], off[3], off[10]]; // 3 and 10 have rise 3 and rack r1
    assert.equal(Object.getPrototypeOf(b0), Object.getPrototypeOf(b1));
    assert.notEqual(Object.getPrototypeOf(b0), Object.getPrototypeOf(b3));
    assert.equal(Object.getPrototypeOf(b3), Object.getPrototypeOf(b10));
    assert.ok(Object.isFrozen(Object.getPrototypeOf(b0)));
    assert.equal(b3.labels, b10.labels);
    assert.ok(Object.isFrozen(b3.labels));
    assert.equal(b0.labels, b1.labels);
    assert.deepEqual([b3.rise, b3.interval, b3.timeout, b3.initial, b3.labels.rack], [3, 1000, 500, 'up', 'r1']);
    assert.deepEqual(Object.keys(b0).sort(), ['host', 'labels', 'name', 'port', 'weight']);
    off.forEach((b, i) => {
      assert.ok(sameConfig(b, plain[i]) && sameConfig(plain[i], b), b.name);
      assert.ok(!sameConfig(b, plain[(i + 1) % plain.length]), b.name);
    });
    // A backend is shared by value: one of another timing is a backend of its own.
    const share = backendSharer(), p = plain[0];
    const x = share(p), y = share({ ...p, name: 'other' }), z = share({ ...p, timeout: 400 });
    assert.equal(Object.getPrototypeOf(x), Object.getPrototypeOf(y));
    assert.notEqual(Object.getPrototypeOf(x), Object.getPrototypeOf(z));
    assert.deepEqual([x.timeout, y.name, z.timeout, z.name], [500, 'other', 400, p.name]);
    assert.deepEqual(flatBackend(share({ ...p, source: '198.18.255.1', mark: 7 })), { ...p, source: '198.18.255.1', mark: 7 });
  });

  test('a JSON file too', async () => {
    const f = write('many.json', JSON.stringify(yaml.load(many(6000))));
    assert.deepEqual(flat(await loadConfigOffThread(f)), loadConfig(f));
  });

  test('errors are the same one line, naming the file and the field', async () => {
    const cases = [
      write('bad-port.yaml', many(7000).replace('port: 80 }\n  - { name: b6001,', 'port: 0 }\n  - { name: b6001,')),
      write('bad-yaml.yaml', 'backends: [\n'),
      path.join(dir, 'missing.yaml'),
    ];
    for (const f of cases) {
      const sync = outcome(() => loadConfig(f));
      assert.ok('error' in sync, f);
      await assert.rejects(loadConfigOffThread(f), (e: Error & { code?: string }) => e.code === 'E_CONFIG' && e.message === sync.error);
    }
    assert.match((outcome(() => loadConfig(cases[0])) as { error: string }).error, /bad-port\.yaml: backends\[6000\]\.port: expected a whole number from 1 to 65535, got 0/);
  });

  test('with the previous list: what loadConfig returns, the unchanged backends the very objects of the previous list', async () => {
    type Spec = { id: number; port: number; rise?: number; mark?: number; rack?: string; interval?: string };
    const specArb = fc.record({ port: fc.constantFrom(80, 81), rise: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      mark: fc.option(fc.constantFrom(1, 7), { nil: undefined }), rack: fc.option(fc.constantFrom('r1', 'r2'), { nil: undefined }), interval: fc.option(fc.constantFrom('1s', '2s'), { nil: undefined }) });
    const text = (list: Spec[], timeout: string) => JSON.stringify({ defaults: { interval: '1s', timeout }, backends: list.map((b) => ({
      name: `b${b.id}`, host: `198.18.${b.id >> 8}.${b.id & 255}`, port: b.port, ...(b.rise ? { rise: b.rise } : {}), ...(b.mark ? { mark: b.mark } : {}),
      ...(b.rack ? { labels: { rack: b.rack } } : {}), ...(b.interval ? { interval: b.interval } : {}) })) });
    let reused = 0, runs = 0;
    await fc.assert(fc.asyncProperty(
      fc.array(specArb, { minLength: 1, maxLength: 30, size: 'medium' }),
      fc.array(fc.record({ op: fc.constantFrom('keep', 'keep', 'keep', 'drop', 'edit', 'rename'), edit: specArb }), { minLength: 30, maxLength: 30 }),
      fc.array(specArb, { maxLength: 5 }), fc.boolean(), fc.boolean(),
      async (first, ops, added, shuffle, retime) => {
        const a: Spec[] = first.map((x, i) => ({ ...x, id: i }));
        let b: Spec[] = [];
        a.forEach((x, i) => {
          const o = ops[i];
          if (o.op === 'keep') b.push(x);
          else if (o.op === 'edit') b.push({ ...o.edit, id: x.id });
          else if (o.op === 'rename') b.push({ ...x, id: x.id + 1000 });
        });
        b.push(...added.map((x, i) => ({ ...x, id: 500 + i })));
        if (!b.length) b.push({ port: 80, id: 999 }); // a config has backends
        if (shuffle) b = [...b].reverse();
        const f1 = write('prev.json', text(a, '500ms')), f2 = write('next.json', text(b, retime ? '400ms' : '500ms'));
        const prev = (await loadConfigOffThread(f1))!;
        const next = (await loadConfigOffThread(f2, { previous: prev.backends }))!;
        assert.deepEqual(flat(next), loadConfig(f2));
        const from = previousIndex(next.backends)!;
        next.backends.forEach((c: BackendConfig, i) => {
          const old = prev.backends.find((p) => p.name === c.name);
          const same = old !== undefined && util.isDeepStrictEqual(flatBackend(old), flatBackend(c));
          if (from[i] >= 0) { assert.equal(c, prev.backends[from[i]]); reused++; }
          // Equal configs are reused (labels come in one order here), and only those.
          assert.equal(from[i] >= 0, same, `${c.name}: reused ${from[i] >= 0}, equal ${same}`);
        });
        runs++;
      }), fcParams(40));
    assert.ok(reused > runs && runs >= 40, `too little reused: ${reused} in ${runs} runs`);
  });
});

describe('the reader keeps only what changed', () => {
  /** The delta as a map of every previous name gives it. */
  const reference = (prevNames: string[], prevFps: Uint32Array, next: BackendConfig[], fps: Uint32Array) => {
    const at = new Map(prevNames.map((n, j) => [n, j]));
    const from = next.map((b, i) => {
      const j = at.get(b.name);
      return j !== undefined && prevFps[2 * j] === fps[2 * i] && prevFps[2 * j + 1] === fps[2 * i + 1] ? j : -1;
    });
    return { from, changed: next.filter((_, i) => from[i] < 0).map((b) => b.name) };
  };
  /** The delta of a whole list, as the reader's sink makes it. */
  const configDelta = (list: BackendConfig[], prev?: ConfigDigest) => {
    const d = new ConfigDelta(prev);
    list.forEach((b, i) => d.add(b, i, list.length));
    return d.result();
  };
  const cfgOf = (ids: Array<[number, number]>) => parseConfig(JSON.stringify({ defaults: { interval: '1s', timeout: '500ms' },
    backends: ids.map(([id, port]) => ({ name: `b${id}`, host: `198.18.${id >> 8}.${id & 255}`, port })) })).backends;

  test('by place first, by name when moved: the answer of a map of every name', () => {
    fc.assert(fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 40 }),
      fc.array(fc.record({ op: fc.constantFrom('keep', 'keep', 'keep', 'port', 'drop', 'swap'), at: fc.nat() }), { maxLength: 12 }),
      fc.uniqueArray(fc.integer({ min: 100, max: 120 }), { maxLength: 4 }),
      (ids, ops, added) => {
        const a = cfgOf(ids.map((id) => [id, 80]));
        const nextIds: Array<[number, number]> = ids.map((id) => [id, 80]);
        for (const o of ops) {
          const k = o.at % nextIds.length;
          if (o.op === 'port') nextIds[k] = [nextIds[k][0], 81];
          else if (o.op === 'drop' && nextIds.length > 1) nextIds.splice(k, 1);
          else if (o.op === 'swap') [nextIds[0], nextIds[k]] = [nextIds[k], nextIds[0]];
        }
        nextIds.push(...added.map((id): [number, number] => [id, 80]));
        const b = cfgOf(nextIds);
        const prev = configDelta(a).digest;
        const got = configDelta(b, prev);
        const want = reference(a.map((x) => x.name), prev.fps, b, got.digest.fps);
        assert.deepEqual([...got.from], want.from);
        assert.deepEqual(got.changed.map((x) => x.name), want.changed);
        assert.equal(got.digest.names, b.map((x) => x.name).join('\n'));
      }), fcParams(300));
  });

  test('a sink gets every backend in order, the list comes back empty, and an error is the same one line', () => {
    const text = JSON.stringify({ defaults: { interval: '1s', timeout: '500ms' }, backends: Array.from({ length: 50 }, (_, i) => ({ name: `b${i}`, host: `198.18.0.${i}`, port: 80 })) });
    const got: Array<[string, number, number]> = [];
    const cfg = parseConfig(text, 'c.json', (b, i, n) => got.push([b.name, i, n]));
    assert.equal(cfg.backends.length, 0);
    assert.deepEqual(got, parseConfig(text, 'c.json').backends.map((b, i) => [b.name, i, 50]));
    const bad = text.replace('"b7","host":"198.18.0.7","port":80', '"b7","host":"198.18.0.7","port":0');
    const delta = new ConfigDelta();
    assert.throws(() => parseConfig(bad, 'c.json', delta.add), /c\.json: backends\[7\]\.port: expected a whole number from 1 to 65535, got 0/);
    assert.throws(() => parseConfig(bad, 'c.json'), /c\.json: backends\[7\]\.port: expected a whole number from 1 to 65535, got 0/);
  });
});
