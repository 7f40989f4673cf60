// The alert rules and the dashboard (deploy/) against a live `halfopen serve`:
// every metric name their PromQL uses is in a real scrape of /metrics, with a
// backend up and one down so the per-backend series are all present.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { ServeProcess, waitFor } from '../helpers/serve';
import { DEPLOY, exposedNames, loadDashboard, missingNames } from '../helpers/promql';

const skip = netnsSkipReason();
const HTTP = 9190;

describe('deploy/ against a live serve', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let serve: ServeProcess;

  before(async () => {
    fleet = await Fleet.create({ tag: 'deploy', v4: '198.18.1.0/28', v6: '2001:2::100/124', open: [80] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-deploy-'));
    const file = path.join(dir, 'serve.yaml');
    fs.writeFileSync(file, `
defaults: { interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }
listen: { http: "127.0.0.1:${HTTP}" }
exporter: { allow: [198.18.1.0/28] }
backends:
  - { name: up1, host: 198.18.1.1, port: 80 }
  - { name: down1, host: 198.18.1.2, port: 81 }
`);
    serve = new ServeProcess(fleet, file);
    await serve.ready();
  });
  after(async () => {
    await serve?.stop();
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every metric the rules and the dashboard use is in the scrape (/metrics, and a /probe answer)', async () => {
    assert.ok(await waitFor(() => serve.json(HTTP, '/backends').every((b: any) => b.counters.checks >= 2), 5000), serve.stderr);
    const probe = serve.get(HTTP, '/probe?target=198.18.1.2:81');
    assert.equal(probe.status, 200, probe.body);
    const text = serve.get(HTTP, '/metrics').body + probe.body;
    assert.match(text, /^halfopen_backend_last_result\{backend="down1",address="198\.18\.1\.2",port="81",state="closed",reason="rst"\} 1$/m);
    const rules = yaml.load(fs.readFileSync(path.join(DEPLOY, 'prometheus', 'halfopen.rules.yml'), 'utf8'));
    assert.deepEqual(missingNames(exposedNames(text), rules, loadDashboard()), []);
  });
});
