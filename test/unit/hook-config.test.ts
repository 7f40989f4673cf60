// Unit tier: choosing the hook in serve's config (probe.hook), validated like
// every other field.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/daemon/config';
import { HalfopenError } from '../../src/errors';

const BACKENDS = 'backends: [{ host: 198.18.0.1, port: 80 }]';

describe('probe.hook', () => {
  test('defaults to auto (XDP when free, else tc)', () => {
    assert.equal(parseConfig(BACKENDS, 'x.yaml').probe.hook, 'auto');
  });

  for (const hook of ['auto', 'xdp', 'tc'] as const) {
    test(`accepts ${hook}`, () => {
      assert.equal(parseConfig(`probe: { hook: ${hook} }\n${BACKENDS}`, 'x.yaml').probe.hook, hook);
    });
  }

  test('anything else names the field and the choices', () => {
    assert.throws(() => parseConfig(`probe: { hook: tcx }\n${BACKENDS}`, 'x.yaml'),
      (e: unknown) => e instanceof HalfopenError && e.code === 'E_CONFIG' && /x\.yaml: probe\.hook: expected "auto", "xdp" or "tc", got "tcx"/.test(e.message));
  });
});
