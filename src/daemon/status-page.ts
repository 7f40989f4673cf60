// The live status page served at `/`: one self-contained HTML document that
// polls /status every second and redraws, no reload and no dependencies.
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>halfopen</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
 h1{font-size:1.3em;margin:0 0 .2em} #summary{color:#555;margin-bottom:1em}
 table{border-collapse:collapse;background:#fff;min-width:60em}
 th,td{padding:.35em .8em;border-bottom:1px solid #e5e5e5;text-align:left;white-space:nowrap}
 th{background:#f0f0f0;font-weight:600}
 .state{font-weight:700;border-radius:3px;padding:.1em .5em;color:#fff}
 .up{background:#2e7d32}.down{background:#c62828}.drain{color:#ef6c00;font-weight:600}.maint{color:#6a1b9a;font-weight:600}
 .hist span{display:inline-block;width:7px;height:14px;margin-right:1px;border-radius:1px}
 .ok{background:#43a047}.bad{background:#e53935}.num{text-align:right;font-variant-numeric:tabular-nums}
</style></head><body>
<h1>halfopen</h1><div id="summary">loading…</div>
<table><thead><tr><th>backend</th><th>address</th><th>state</th><th>admin</th><th class="num">weight %</th><th>last check</th><th class="num">rtt ms</th><th>since</th><th>checks (newest right)</th></tr></thead>
<tbody id="rows"></tbody></table>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
async function refresh() {
  try {
    const r = await fetch('status', { cache: 'no-store' });
    const st = await r.json();
    const list = st.backends;
    document.getElementById('summary').textContent = st.up + ' up, ' + st.down + ' down · updated ' + new Date().toLocaleTimeString() +
      (list.length < st.total ? ' · showing ' + list.length + ' of ' + st.total + ': down first, then the latest changes' : '');
    document.getElementById('rows').innerHTML = list.map((b) =>
      '<tr data-backend="' + esc(b.name) + '" data-state="' + b.state + '"><td>' + esc(b.name) + '</td><td>' + esc(b.address.includes(':') ? '[' + b.address + ']:' + b.port : b.address + ':' + b.port) +
      '</td><td><span class="state ' + b.state + '">' + b.state.toUpperCase() + '</span>' + (b.down_reason ? ' ' + esc(b.down_reason) : '') +
      '</td><td class="' + b.admin + '">' + b.admin + '</td><td class="num">' + b.effective_weight + '</td><td>' + esc(b.last ? b.last.state + ' (' + b.last.reason + ')' : '–') +
      '</td><td class="num">' + (b.last && b.last.rtt_ms !== null ? b.last.rtt_ms.toFixed(3) : '–') + '</td><td>' + esc(new Date(b.since).toLocaleTimeString()) +
      '</td><td class="hist">' + b.history.map((h) => '<span class="' + (h.ok ? 'ok' : 'bad') + '" title="' + esc(h.state) + '"></span>').join('') + '</td></tr>').join('');
  } catch (e) {
    document.getElementById('summary').textContent = 'cannot reach halfopen: ' + e;
  }
}
refresh();
setInterval(refresh, 1000);
</script></body></html>
`;
