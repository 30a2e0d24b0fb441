'use strict';
// The status page's only script (admin/status_page.rs). It fetches
// GET /backends every PERIOD_MS and redraws with textContent only: no string
// from the JSON is ever parsed as markup (and the CSP requires Trusted Types).
(() => {
  const PERIOD_MS = 1000;
  const TIMEOUT_MS = 5000;
  const TOKEN_KEY = 'sluice-admin-token';
  // States with a colour of their own; anything else is drawn neutral.
  const STATES = ['healthy', 'half-open', 'draining', 'unhealthy', 'ejected'];
  const COLUMNS = [
    ['address', 'Backend'], ['state', 'State'], ['reason', 'Reason'], ['since', 'Since'],
    ['in-flight', 'In flight', 1], ['rate', 'Req/s', 1], ['errors', 'Errors', 1],
    ['latency', 'Latency', 1], ['requests', 'Requests', 1], ['failures', 'Failures', 1],
    ['weight', 'Weight', 1], ['checks', 'Checks'],
  ];
  const $ = (id) => document.getElementById(id);

  // The totals seen at the previous refresh, by group and address, for rates.
  let previous = new Map();
  let timer = 0;
  let running = false;
  // The bearer token: this tab's sessionStorage, or memory if storage is off.
  let memoryToken = '';

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const str = (v) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

  function storedToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }
  function storeToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: the token lives until the page closes */ }
    memoryToken = t;
  }
  memoryToken = storedToken();

  function setStatus(kind, text) {
    $('status').className = 'status ' + kind;
    $('status-text').textContent = text;
  }

  function fmtRate(r) {
    if (r === null) return '—';
    return r < 10 ? r.toFixed(1) : Math.round(r).toString();
  }
  function fmtPercent(p) {
    if (p === null) return '—';
    return (p < 10 ? p.toFixed(1) : Math.round(p).toString()) + ' %';
  }
  function fmtLatency(micros) {
    if (!micros) return '—';
    if (micros < 1000) return micros + ' µs';
    const ms = micros / 1000;
    return (ms < 100 ? ms.toFixed(1) : Math.round(ms).toString()) + ' ms';
  }
  function fmtAgo(unixMs) {
    if (!unixMs) return '—';
    let s = Math.max(0, Math.floor((Date.now() - unixMs) / 1000));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60); s %= 60;
    if (m < 60) return m + ' m ' + s + ' s';
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m % 60) + ' m';
    return Math.floor(h / 24) + ' d';
  }

  // Request rate and error percentage since the previous refresh; null when
  // there is no previous sample (or a counter went back: the backend was
  // removed and added again).
  function rates(key, b, now, seen) {
    const cur = { requests: num(b.requests), failures: num(b.failures), at: now };
    seen.set(key, cur);
    const p = previous.get(key);
    if (!p || now <= p.at || cur.requests < p.requests || cur.failures < p.failures) {
      return { rate: null, errors: null };
    }
    const dr = cur.requests - p.requests;
    const df = cur.failures - p.failures;
    return {
      rate: dr / ((now - p.at) / 1000),
      errors: dr > 0 ? Math.min(100, (100 * df) / dr) : null,
    };
  }

  function cell(row, column, label, text, value) {
    const td = el('td', 'c-' + column, text);
    td.setAttribute('data-label', label);
    if (value !== undefined && value !== null) td.setAttribute('data-value', String(value));
    row.append(td);
    return td;
  }

  function backendRow(group, b, now, seen, sums) {
    const address = str(b.address);
    const state = str(b.state);
    const { rate, errors } = rates(group + '\u0000' + address, b, now, seen);
    if (rate !== null) sums.rate += rate;
    const row = el('tr', state === 'draining' ? 'draining' : state === 'healthy' || state === 'half-open' ? '' : 'out');
    row.setAttribute('data-backend', address);
    row.setAttribute('data-state', state);
    const label = (i) => COLUMNS[i][1];
    cell(row, 'address', label(0), address);
    const badge = el('span', 'badge s-' + (STATES.includes(state) ? state : 'other'), state || '?');
    cell(row, 'state', label(1)).append(badge);
    cell(row, 'reason', label(2), str(b.reason));
    const since = cell(row, 'since', label(3), fmtAgo(num(b.since_unix_ms)));
    const at = new Date(num(b.since_unix_ms));
    if (b.since_unix_ms && !Number.isNaN(at.getTime())) since.title = at.toISOString();
    cell(row, 'in-flight num', label(4), num(b.in_flight), num(b.in_flight));
    cell(row, 'rate num', label(5), fmtRate(rate), rate === null ? null : rate.toFixed(3));
    const err = cell(row, 'errors num', label(6), fmtPercent(errors), errors === null ? null : errors.toFixed(3));
    if (errors) err.classList.add('bad');
    cell(row, 'latency num', label(7), fmtLatency(num(b.latency_ewma_micros)), num(b.latency_ewma_micros));
    cell(row, 'requests num', label(8), num(b.requests), num(b.requests));
    const fails = cell(row, 'failures num', label(9), num(b.failures), num(b.failures));
    if (num(b.failures)) fails.classList.add('bad');
    const weight = num(b.weight);
    const effective = num(b.effective_weight);
    const w = effective && effective < weight ? effective.toFixed(1) + ' / ' + weight : String(weight);
    cell(row, 'weight num', label(10), w, weight);
    const checks = cell(row, 'checks', label(11));
    const list = Array.isArray(b.checks) ? b.checks : [];
    if (!list.length) checks.textContent = '—';
    for (const c of list) {
      const mark = el('span', 'check ' + (c && c.ok ? 'ok' : 'fail'), c && c.ok ? '✓' : '✗');
      mark.title = str(c && c.detail);
      checks.append(mark);
    }
    return row;
  }

  function groupSection(g, now, seen, totals) {
    const name = str(g.name);
    const backends = Array.isArray(g.backends) ? g.backends : [];
    const sums = { rate: 0 };
    const rows = backends.map((b) => backendRow(name, b || {}, now, seen, sums));
    const live = backends.filter((b) => b && (b.state === 'healthy' || b.state === 'half-open')).length;
    totals.backends += backends.length;
    totals.live += live;
    totals.rate += sums.rate;

    const section = el('section', 'group');
    section.setAttribute('data-group', name);
    const head = el('header');
    head.append(el('h2', 'group-name', name));
    const parts = [live + ' of ' + backends.length + ' in rotation', fmtRate(sums.rate) + ' req/s'];
    parts.push(num(g.retries) + ' retries' + (num(g.retry_budget_exhausted) ? ' (' + num(g.retry_budget_exhausted) + ' over budget)' : ''));
    if (g.queued !== undefined) parts.push(num(g.queued) + ' queued, ' + num(g.queue_timeouts) + ' queue timeouts, ' + num(g.queue_full) + ' refused');
    head.append(el('p', 'summary', parts.join(' · ')));
    section.append(head);
    if (!rows.length) {
      section.append(el('p', 'empty', 'No backends.'));
      return section;
    }
    const table = el('table');
    const thead = el('thead');
    const tr = el('tr');
    for (const [, title, numeric] of COLUMNS) tr.append(el('th', numeric ? 'num' : '', title));
    thead.append(tr);
    const tbody = el('tbody');
    tbody.append(...rows);
    table.append(thead, tbody);
    section.append(table);
    return section;
  }

  function render(data, now) {
    const seen = new Map();
    const totals = { backends: 0, live: 0, rate: 0 };
    const groups = data && Array.isArray(data.groups) ? data.groups : [];
    const sections = groups.map((g) => groupSection(g || {}, now, seen, totals));
    if (!sections.length) sections.push(el('p', 'empty', 'No upstream groups.'));
    $('groups').replaceChildren(...sections);
    $('totals').textContent = groups.length + (groups.length === 1 ? ' group · ' : ' groups · ') +
      totals.live + ' of ' + totals.backends + ' backends in rotation · ' +
      (previous.size ? fmtRate(totals.rate) : '—') + ' req/s';
    previous = seen;
  }

  function askToken(message) {
    $('auth-msg').textContent = message;
    $('auth').hidden = false;
    $('token').focus();
  }

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(refresh, PERIOD_MS);
  }

  async function refresh() {
    clearTimeout(timer);
    if (running) return;
    running = true;
    const control = new AbortController();
    const abort = setTimeout(() => control.abort(), TIMEOUT_MS);
    const headers = { Accept: 'application/json' };
    if (memoryToken) headers.Authorization = 'Bearer ' + memoryToken;
    let again = true;
    try {
      // Relative: behind a reverse proxy that mounts the admin API under a
      // prefix, the page at PREFIX/status reads PREFIX/backends.
      const r = await fetch('backends', {
        headers, cache: 'no-store', credentials: 'omit', redirect: 'error', signal: control.signal,
      });
      if (r.status === 401) {
        // Wait for a token rather than ask the API again every second.
        again = false;
        askToken(memoryToken ? 'The admin API refused this token.' : 'This admin API needs its bearer token.');
        setStatus('locked', 'token needed');
        return;
      }
      const body = await r.json().catch(() => null);
      if (!r.ok) throw new Error('HTTP ' + r.status + (body && body.error ? ': ' + str(body.error) : ''));
      $('auth').hidden = true;
      $('forget').hidden = !memoryToken;
      render(body, performance.now());
      document.body.classList.remove('stale');
      setStatus('live', 'live · updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      document.body.classList.add('stale');
      setStatus('down', 'admin API unreachable: ' + (e && e.name === 'AbortError' ? 'timed out' : str(e && e.message)));
    } finally {
      clearTimeout(abort);
      running = false;
      if (again) schedule();
    }
  }

  $('auth').addEventListener('submit', (e) => {
    e.preventDefault();
    storeToken($('token').value.trim());
    $('token').value = '';
    previous = new Map();
    refresh();
  });
  $('forget').addEventListener('click', () => {
    storeToken('');
    $('forget').hidden = true;
    refresh();
  });
  // A hidden tab stops polling, and catches up when shown again.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(timer); else refresh();
  });
  refresh();
})();
