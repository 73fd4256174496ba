/* shim/console/console.js: the console page's behaviour: sign-in, hash routes, and each view
   as calls of the HTTP API of docs/console.md. No library, no eval, no inline style (CSP). */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const POLL_MS = 1000;        // live refresh of the requests list
  const FULL_EVERY = 5;        // every 5th poll re-reads the first page: replayed rows change
  const HEALTH_MS = 10000;

  // ------------------------------------------------------------------ small helpers

  // el('a', {href: '#x', class: 'y', text: 'z'}, child...): a new element; never a style.
  function el(tag, props, ...kids) {
    const node = document.createElement(tag);
    setProps(node, props);
    for (const kid of kids.flat()) {
      if (kid !== null && kid !== undefined && kid !== false) node.append(kid);
    }
    return node;
  }
  function svgEl(tag, props, ...kids) {
    const node = document.createElementNS(SVG, tag);
    setProps(node, props);
    for (const kid of kids) node.append(kid);
    return node;
  }
  function setProps(node, props) {
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
  }

  const pad = (n) => String(n).padStart(2, '0');
  function parseTime(iso) {
    const d = iso ? new Date(iso) : null;
    return d && !isNaN(d) ? d : null;
  }
  // Local time, to the second; the year only when it is not this year's.
  function fmtTime(iso) {
    const d = parseTime(iso);
    if (!d) return iso || '—';
    const day = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const year = d.getFullYear() === new Date().getFullYear() ? '' : `${d.getFullYear()}-`;
    return `${year}${day} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function timeEl(iso) {
    return el('time', { datetime: iso || null, title: iso || null, text: fmtTime(iso) });
  }
  const plural = (n, word) => `${n} ${word}${Number(n) === 1 ? '' : 's'}`;
  const dash = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));

  function statusClass(status) {
    const c = Math.floor(Number(status) / 100);
    return c === 2 ? 's2' : c === 4 ? 's4' : c === 5 ? 's5' : 's-other';
  }
  function badge(status) {
    return el('span', { class: 'badge ' + statusClass(status), text: dash(status) });
  }
  const isOpenFailure = (r) => r.status >= 400 && r.status < 500 && !r.replayed_by;

  // ------------------------------------------------------------------ status line

  function say(message, kind) {
    const s = $('status');
    s.textContent = message || '';
    s.className = 'status' + (kind ? ' is-' + kind : '');
  }
  // An API error, said once: a 401 has already sent the page back to the sign-in form.
  function fail(err, what) {
    if (err.status === 401) return;
    say((what ? what + ': ' : '') + err.message, 'error');
  }

  // ------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(status, body) {
      const text = body && typeof body.error === 'string' ? body.error : null;
      super(status === 0 ? text : `${text || 'the console answered'} (HTTP ${status})`);
      this.status = status;
      this.body = body;
    }
  }

  const session = { csrf: null, keyName: null };

  // api(PATH, ARGS, METHOD): GET with ARGS as the query, POST with ARGS as a JSON body and the
  // session's CSRF token; the answer's JSON, or an ApiError.
  async function api(path, args, method = 'GET') {
    let url = 'api/' + path;
    const init = { method, credentials: 'same-origin', cache: 'no-store',
                   headers: { Accept: 'application/json' } };
    if (method === 'GET') {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(args || {})) {
        if (v !== '' && v !== null && v !== undefined) qs.set(k, String(v));
      }
      if (qs.toString()) url += '?' + qs;
    } else {
      init.headers['Content-Type'] = 'application/json';
      if (session.csrf) init.headers['X-CSRF-Token'] = session.csrf;
      init.body = JSON.stringify(args || {});
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, { error: 'the console cannot be reached (' + e.message + ')' });
    }
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text.slice(0, 300) }; }
    if (res.status === 401 && path !== 'sign-in' && path !== 'session' && session.csrf) {
      signedOut('Your session has ended: sign in again.');
    }
    if (!res.ok) {
      const err = new ApiError(res.status, body);
      err.retryAfter = res.headers.get('Retry-After');
      throw err;
    }
    return body;
  }

  // ------------------------------------------------------------------ session

  // FOCUS: move the focus to the view's heading (not on the page's first load, so that the
  // first Tab reaches the skip link).
  function signedIn(s, focus) {
    session.csrf = s.csrf;
    session.keyName = s.key_name;
    $('who-name').textContent = s.key_name;
    $('nav').hidden = false;
    $('who').hidden = false;
    route(focus);
  }

  function signedOut(message) {
    leaveCurrent();
    session.csrf = null;
    $('nav').hidden = true;
    $('who').hidden = true;
    show('signin');
    $('signin-key').focus();
    if (message) say(message, 'error');
  }

  async function onSignIn(ev) {
    ev.preventDefault();
    const key = $('signin-key').value;
    try {
      await api('sign-in', { key }, 'POST');
      const s = await api('session');
      $('signin-key').value = '';
      signedIn(s, true);
      say('Signed in as ' + s.key_name + '.', 'ok');
    } catch (err) {
      if (err.status === 401) say('That key does not open the console.', 'error');
      else if (err.status === 429) {
        say('Too many failed sign-ins from here: try again in ' + (err.retryAfter || 60) + ' s.',
            'error');
      } else fail(err, 'Sign-in');
      $('signin-key').select();
    }
  }

  async function onSignOut() {
    try { await api('sign-out', {}, 'POST'); } catch (err) { /* signed out either way */ }
    signedOut();
    say('Signed out.', 'ok');
  }

  // ------------------------------------------------------------------ routes

  // Each view: enter(ARG) when shown, leave() when another is (stops its timers).
  const views = {
    requests: { enter: requestsEnter, leave: requestsLeave },
    request: { enter: requestEnter },
    failures: { enter: failuresLoad },
    agents: { enter: agentsEnter },
    setup: { enter: setupEnter },
    health: { enter: healthEnter, leave: healthLeave },
  };
  let current = null;

  function leaveCurrent() {
    if (current && views[current].leave) views[current].leave();
    current = null;
  }

  function route(focus = true) {
    if (!session.csrf) return;
    const m = /^#([a-z]+)(?:\/(\d+))?$/.exec(location.hash) || [];
    let name = m[1];
    if (!views[name] || (name === 'request') !== (m[2] !== undefined)) {
      name = 'requests';
      history.replaceState(null, '', '#requests');
    }
    leaveCurrent();
    current = name;
    say('');   // a message belongs to the view it was said on
    show(name);
    if (focus) $('h-' + name).focus();
    views[name].enter(m[2]);
  }

  function show(name) {
    for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-' + name;
    const section = name === 'request' ? 'requests' : name;
    for (const a of document.querySelectorAll('#nav a')) {
      const here = a.dataset.view === section;
      a.classList.toggle('current', here);
      if (here) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const title = name === 'signin' ? 'Sign in' : $('h-' + name).textContent;
    document.title = title + ' · leadintake console';
  }

  // ------------------------------------------------------------------ requests

  const req = { rows: new Map(), newest: null, nextBefore: null, tick: 0, timer: null, gen: 0,
                pollFailed: false };

  // The list's columns: header label (each card's cell shows it at a phone's width), content.
  const REQ_COLS = [
    ['Request', (r) => el('a', { href: '#request/' + r.id, class: 'mono', text: '#' + r.id })],
    ['Received', (r) => timeEl(r.received_at)],
    ['Source', (r) => dash(r.source)],
    ['Key', (r) => dash(r.key_name)],
    ['Status', (r) => badge(r.status)],
    ['Agent', (r) => dash(r.agent)],
    ['Lead', (r) => (r.lead_id ? '#' + r.lead_id + (r.created ? ' new' : '') : '—')],
    ['Error', (r) => (r.replayed_by ? `replayed as #${r.replayed_by}` + (r.error ? ' · ' : '') : '')
                     + (r.error || (r.replayed_by ? '' : '—'))],
  ];
  const rowSig = (r) => JSON.stringify(r);

  function reqFilters() {
    return { status: $('f-status').value, agent: $('f-agent').value.trim(),
             q: $('f-q').value.trim() };
  }

  function reqRow(r, fresh) {
    const tr = el('tr', { 'data-id': r.id, class: fresh ? 'fresh' : null });
    tr.classList.toggle('replayed', Boolean(r.replayed_by));
    for (const [label, cell] of REQ_COLS) {
      const content = cell(r);
      tr.append(el('td', { 'data-label': label, title: label === 'Error' ? content : null },
                   content));
    }
    req.rows.set(Number(r.id), { tr, sig: rowSig(r) });
    return tr;
  }

  // A row that changed (a replay set replayed_by): its cells in place, the link kept (focus).
  function reqUpdate(have, r) {
    REQ_COLS.forEach(([label, cell], i) => {
      if (i === 0) return;
      const td = have.tr.cells[i];
      const content = cell(r);
      const text = typeof content === 'string' ? content : content.textContent;
      if (td.textContent !== text) td.replaceChildren(content);
      if (label === 'Error') td.title = text;
    });
    have.tr.classList.toggle('replayed', Boolean(r.replayed_by));
    have.sig = rowSig(r);
  }

  // D: the last answer of a reload or an older page. A filtered call reads a bounded number
  // of rows (docs/console.md): say so when it stopped there.
  function reqFooter(d) {
    $('req-empty').hidden = req.rows.size > 0;
    $('req-older').hidden = req.nextBefore === null || req.nextBefore === undefined;
    if (d) {
      $('req-note').textContent = d.searched && d.next_before !== null
        ? `The filter read the newest ${d.searched} requests; "Older requests" looks further.` : '';
    }
  }

  function bumpNewest(id) {
    if (id !== null && id !== undefined && (req.newest === null || Number(id) > req.newest)) {
      req.newest = Number(id);
    }
  }

  async function reqReload() {
    const gen = ++req.gen;
    try {
      const d = await api('requests', reqFilters());
      if (gen !== req.gen) return;
      req.rows.clear();
      req.newest = null;
      $('req-rows').replaceChildren(...d.rows.map((r) => reqRow(r, false)));
      bumpNewest(d.newest_id);
      for (const r of d.rows) bumpNewest(r.id);
      req.nextBefore = d.next_before;
      reqFooter(d);
    } catch (err) {
      fail(err, 'Requests');
    }
  }

  // Known rows are updated only when they changed; a new one goes in its place by id (newest
  // first: on top, or lower when a request committed after a newer one). A row older than the
  // oldest shown is left to "Older requests".
  function reqMerge(rows) {
    const body = $('req-rows');
    for (const r of rows) {
      const id = Number(r.id);
      const have = req.rows.get(id);
      if (have) {
        if (have.sig !== rowSig(r)) reqUpdate(have, r);
        continue;
      }
      const next = [...body.rows].find((tr) => Number(tr.dataset.id) < id);
      if (next || req.nextBefore === null || req.nextBefore === undefined) {
        body.insertBefore(reqRow(r, true), next || null);
      }
    }
    reqFooter();
  }

  function liveState(state) {
    $('live-state').className = 'live-state' + (state ? ' ' + state : '');
  }

  function reqSchedule() {
    clearTimeout(req.timer);
    req.timer = setTimeout(reqPoll, POLL_MS);
  }

  async function reqPoll() {
    if (current !== 'requests') return;
    if (!$('live').checked || document.hidden) {
      liveState('');
      reqSchedule();
      return;
    }
    const gen = req.gen;
    const args = reqFilters();
    req.tick += 1;
    if (req.tick % FULL_EVERY === 0) args.limit = Math.min(Math.max(req.rows.size, 50), 200);
    else if (req.newest !== null) args.after = req.newest;
    try {
      const d = await api('requests', args);
      if (gen === req.gen && current === 'requests') {
        reqMerge(d.rows);
        bumpNewest(d.newest_id);   // the whole log's newest: the next poll asks for later ones
      }
      liveState('on');
      if (req.pollFailed) say('Live updates are back.', 'ok');
      req.pollFailed = false;
    } catch (err) {
      liveState('error');
      if (err.status === 401) return;
      if (!req.pollFailed) fail(err, 'Live updates');
      req.pollFailed = true;
    }
    if (current === 'requests') reqSchedule();
  }

  async function reqOlder() {
    const gen = req.gen;
    try {
      const d = await api('requests', { ...reqFilters(), before: req.nextBefore });
      if (gen !== req.gen) return;
      const rows = d.rows.filter((r) => !req.rows.has(Number(r.id)));
      $('req-rows').append(...rows.map((r) => reqRow(r, false)));
      req.nextBefore = d.next_before;
      reqFooter(d);
      say(`${plural(rows.length, 'older request')} shown.`);
    } catch (err) {
      fail(err, 'Older requests');
    }
  }

  async function requestsEnter() {
    await reqReload();
    liveState($('live').checked ? 'on' : '');
    reqSchedule();
  }
  function requestsLeave() {
    clearTimeout(req.timer);
    req.timer = null;
  }

  let filterTimer = null;
  function onFilterInput() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(reqReload, 300);
  }

  // ------------------------------------------------------------------ one request

  function facts(pairs) {
    const dl = el('dl', { class: 'facts' });
    for (const [term, value] of pairs) {
      if (value === undefined) continue;
      dl.append(el('dt', { text: term }), el('dd', {}, value === null ? '—' : value));
    }
    return dl;
  }
  const requestLink = (id) => el('a', { href: '#request/' + id, class: 'mono', text: '#' + id });
  const pretty = (v) => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));

  async function requestEnter(id) {
    $('h-request').textContent = 'Request #' + id;
    document.title = 'Request #' + id + ' · leadintake console';
    const box = $('request-body');
    try {
      const d = await api('request', { id });
      if (current === 'request') box.replaceChildren(...requestView(d));
    } catch (err) {
      box.replaceChildren(el('p', { class: 'empty', text: err.status === 404
          ? 'There is no request #' + id + '.' : 'The request could not be read.' }));
      fail(err, 'Request #' + id);
    }
  }

  function requestView(d) {
    const r = d.request;
    const replays = d.replays || [];
    const out = [facts([
      ['Received', timeEl(r.received_at)],
      ['Source', dash(r.source)],
      ['Key', dash(r.key_name)],
      ['Client address', dash(r.client_addr)],
      ['Status', badge(r.status)],
      ['Agent asked for', dash(r.agent)],
      ['Error', r.error ? el('span', { class: 'error-text', text: r.error }) : null],
      ['Lead', r.lead_id ? '#' + r.lead_id + (r.created ? ' (created)' : ' (updated)') : null],
      ['Duration', r.duration_ms === null || r.duration_ms === undefined ? null
                   : Number(r.duration_ms).toFixed(1) + ' ms'],
      ['Replay of', r.replay_of ? requestLink(r.replay_of) : undefined],
      ['Replayed as', r.replayed_by ? requestLink(r.replayed_by) : null],
      // the chain (the replay of the replay...), when there is more than the one above
      ['Replay chain', replays.length > 1
        ? replays.flatMap((x, i) => (i ? [' → ', requestLink(x)] : [requestLink(x)])) : undefined],
    ])];
    if (isOpenFailure(r)) {
      out.push(el('p', {}, el('button', { type: 'button', class: 'btn btn-primary',
        id: 'replay-one', text: 'Replay this request', onclick: () => replayOne(r.id) })));
    }
    const reasons = Object.entries(d.reasons || {});
    if (reasons.length) {
      out.push(el('h2', { text: 'Why each field was refused' }),
               el('table', { class: 'grid cards reasons' },
                  el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Field' }),
                                     el('th', { scope: 'col', text: 'Reason' }))),
                  el('tbody', {}, reasons.map(([f, why]) => el('tr', {},
                     el('td', { 'data-label': 'Field', class: 'field-name', text: f }),
                     el('td', { 'data-label': 'Reason', class: 'wrap', text: why }))))));
    }
    out.push(el('div', { class: 'detail-grid' },
      el('section', { 'aria-labelledby': 'h-payload' },
         el('h2', { id: 'h-payload', text: 'Payload as received (secrets removed)' }),
         el('pre', { class: 'code', tabindex: '0',
                     text: r.payload !== null && r.payload !== undefined ? pretty(r.payload)
                           : r.raw_body ? 'Not JSON; the body as received:\n' + r.raw_body
                           : 'No payload was stored.' })),
      el('section', { 'aria-labelledby': 'h-lead' },
         el('h2', { id: 'h-lead', text: 'Lead' }),
         d.lead ? el('pre', { class: 'code', tabindex: '0', text: pretty(d.lead) })
                : el('p', { class: 'empty', text: 'No lead: this request stored nothing.' }))));
    return out;
  }

  async function replayOne(id) {
    try {
      const d = await api('replay', { id: Number(id) }, 'POST');
      say(`Replayed as request #${d.id}: ${d.status}.`, d.status < 300 ? 'ok' : 'error');
      await requestEnter(id);
      $('h-request').focus();
    } catch (err) {
      fail(err, 'Replay');
    }
  }

  // ------------------------------------------------------------------ failures

  async function failuresLoad() {
    try {
      const d = await api('failures');
      $('fail-rows').replaceChildren(...d.groups.map(failureRow));
      $('fail-empty').hidden = d.groups.length > 0;
    } catch (err) {
      fail(err, 'Failures');
    }
  }

  function failureRow(g) {
    const btn = el('button', { type: 'button', class: 'btn btn-small',
      'aria-label': `Replay ${plural(g.count, 'request')} for ${dash(g.agent)}: ${g.error}`,
      text: 'Replay group' });
    btn.addEventListener('click', () => replayGroup(g, btn));
    return el('tr', {},
      el('td', { 'data-label': 'Requests', class: 'num', text: String(g.count) }),
      el('td', { 'data-label': 'Status' }, badge(g.status)),
      el('td', { 'data-label': 'Reason', class: 'wrap', text: dash(g.error) }),
      el('td', { 'data-label': 'Agent', text: dash(g.agent) }),
      el('td', { 'data-label': 'First' }, timeEl(g.first_at)),
      el('td', { 'data-label': 'Last' }, timeEl(g.last_at)),
      el('td', { 'data-label': 'Latest' }, requestLink(g.latest_id)),
      el('td', { 'data-label': 'Action' }, btn));
  }

  // At most 500 per call (docs/console.md): call again while the answer says there is more.
  async function replayGroup(g, btn) {
    btn.disabled = true;
    say(`Replaying ${plural(g.count, 'request')}…`);
    const total = { replayed: 0, ok: 0, failed: 0, stoppedAt: null };
    try {
      for (let more = true, calls = 0; more && calls < 1000; calls++) {
        const d = await api('replay-group', { error: g.error, agent: g.agent }, 'POST');
        total.replayed += d.replayed;
        total.ok += d.ok;
        total.failed += d.failed;
        total.stoppedAt = d.stopped_at || null;
        more = d.more && d.replayed > 0;
      }
      // the first replay that fails again stops the group: the others would fail the same way
      const stop = total.stoppedAt
        ? ` Stopped at request #${total.stoppedAt}, which failed again: fix its cause first.` : '';
      say(`Replayed ${plural(total.replayed, 'request')}: ${total.ok} succeeded, `
          + `${total.failed} failed again.${stop}`, total.failed ? 'error' : 'ok');
    } catch (err) {
      fail(err, 'Replay');
    }
    await failuresLoad();
    $('h-failures').focus();
  }

  // ------------------------------------------------------------------ agents

  const agents = { list: [], editing: null };

  async function agentsEnter() {
    closeEdit(false);
    await agentsLoad();
  }

  async function agentsLoad() {
    try {
      const d = await api('agents');
      agents.list = d.agents;
      $('agent-rows').replaceChildren(...d.agents.map(agentRow));
      $('agent-empty').hidden = d.agents.length > 0;
    } catch (err) {
      fail(err, 'Agents');
    }
  }

  function agentRow(a) {
    const name = a.username;
    return el('tr', { 'data-id': a.id, class: a.active ? null : 'inactive' },
      el('td', { 'data-label': 'Username', class: 'mono', text: name }),
      el('td', { 'data-label': 'Display name', text: dash(a.display_name) }),
      el('td', { 'data-label': 'Dialer user id', class: 'mono', text: dash(a.dialer_user_id) }),
      el('td', { 'data-label': 'State', text: a.active ? 'Active' : 'Inactive' }),
      el('td', { 'data-label': 'Open failures', class: 'num' },
         a.open_failures ? el('a', { href: '#failures', text: String(a.open_failures) }) : '0'),
      el('td', { 'data-label': 'Actions' }, el('span', { class: 'row-actions' },
         el('button', { type: 'button', class: 'btn btn-small', 'data-act': 'edit',
                        'aria-label': 'Edit ' + name, text: 'Edit',
                        onclick: () => openEdit(a) }),
         el('button', { type: 'button', class: 'btn btn-small', 'data-act': 'active',
                        'aria-label': (a.active ? 'Deactivate ' : 'Activate ') + name,
                        text: a.active ? 'Deactivate' : 'Activate',
                        onclick: () => setActive(a) }))));
  }

  function focusAgentButton(id, act) {
    const b = document.querySelector(`#agent-rows tr[data-id="${id}"] button[data-act="${act}"]`);
    if (b) b.focus();
  }

  function agentFields(prefix) {
    return { username: $(prefix + '-username').value.trim(),
             display_name: $(prefix + '-display').value.trim() || null,
             dialer_user_id: $(prefix + '-dialer').value.trim() || null };
  }

  async function onAgentAdd(ev) {
    ev.preventDefault();
    const fields = agentFields('add');
    const args = { username: fields.username };
    if (fields.display_name) args.display_name = fields.display_name;
    if (fields.dialer_user_id) args.dialer_user_id = fields.dialer_user_id;
    try {
      const d = await api('agent-add', args, 'POST');
      say(`Agent ${d.agent.username} added.`, 'ok');
      $('agent-add').reset();
      await agentsLoad();
      $('add-username').focus();
    } catch (err) {
      fail(err, 'Add agent');
    }
  }

  function openEdit(a) {
    agents.editing = a;
    $('edit-title').textContent = 'Edit agent ' + a.username;
    $('edit-username').value = a.username;
    $('edit-display').value = a.display_name || '';
    $('edit-dialer').value = a.dialer_user_id || '';
    $('agent-edit').hidden = false;
    $('edit-username').focus();
  }

  function closeEdit(refocus) {
    const a = agents.editing;
    agents.editing = null;
    $('agent-edit').hidden = true;
    if (refocus && a) focusAgentButton(a.id, 'edit');
  }

  async function onAgentEdit(ev) {
    ev.preventDefault();
    const a = agents.editing;
    if (!a) return;
    try {
      const d = await api('agent-edit', { id: a.id, ...agentFields('edit') }, 'POST');
      say(`Agent ${d.agent.username} saved.`, 'ok');
      await agentsLoad();
      closeEdit(true);
    } catch (err) {
      fail(err, 'Save agent');
    }
  }

  async function setActive(a) {
    try {
      const d = await api('agent-active', { id: a.id, active: !a.active }, 'POST');
      say(`Agent ${d.agent.username} ${d.agent.active ? 'activated' : 'deactivated'}.`, 'ok');
      await agentsLoad();
      focusAgentButton(a.id, 'active');
    } catch (err) {
      fail(err, 'Agent');
    }
  }

  // ------------------------------------------------------------------ dialer set-up

  // What the test lead's --A--field--B-- become: harmless values, one fixed test lead (its
  // lead id, and an Ofcom drama number that no one owns); every other field is sent empty,
  // which the intake takes as absent (docs/vicidial.md), as VICIdial does for a blank one.
  const TEST_VALUES = {
    lead_id: 'console-test',
    phone_code: '44',
    phone_number: '7700900999',
    first_name: 'Test',
    last_name: 'Lead',
    email: 'test-lead@example.com',
    comments: 'leadintake console test lead',
    campaign: 'TEST',
    dispo: 'TEST',
  };

  const setup = { dispo: null, loaded: false };

  async function setupEnter() {
    if (!setup.loaded) await setupLoad('');
    await setupAgents();
  }

  async function setupLoad(base) {
    try {
      const d = await api('setup', base ? { base_url: base } : {});
      setup.dispo = d.dispo_url;
      setup.loaded = true;
      $('setup-dispo').value = d.dispo_url;
      $('setup-webform').value = d.webform_url;
      if (!base) $('setup-base').value = d.dispo_url.split('?')[0];
      const keys = Array.isArray(d.key_names) ? d.key_names : [];
      $('test-keys').replaceChildren(...keys.map((k) => el('option', { value: k })));
      if (keys.length && !$('test-key').value) $('test-key').value = keys[0];
    } catch (err) {
      if (!base && err.status === 400) {
        say('Type the intake URL as VICIdial reaches it, then "Show the URLs".');
      } else {
        fail(err, 'Set-up');
      }
    }
  }

  async function setupAgents() {
    try {
      const d = await api('agents');
      const sel = $('test-agent');
      const keep = sel.value;
      sel.replaceChildren(...d.agents.filter((a) => a.active).map((a) =>
        el('option', { value: a.username,
                       text: a.username + (a.display_name ? ' (' + a.display_name + ')' : '') })));
      if (keep) sel.value = keep;
    } catch (err) {
      fail(err, 'Agents');
    }
  }

  // The Dispo Call URL's query, each --A--field--B-- replaced as VICIdial would (URL-encoded),
  // without api_key: the test names its dialer key instead.
  function testQuery(dispoUrl, user) {
    const query = dispoUrl.slice(dispoUrl.indexOf('?') + 1);
    const value = (f) => (f === 'user' ? user : TEST_VALUES[f] || '');
    return query.split('&')
      .filter((part) => part.split('=')[0] !== 'api_key')
      .map((part) => part.replace(/--A--(\w+)--B--/g,
                                  (_, f) => encodeURIComponent(value(f)).replace(/%20/g, '+')))
      .join('&');
  }

  async function onTestLead(ev) {
    ev.preventDefault();
    if (!setup.dispo) return say('Show the URLs first.', 'error');
    const user = $('test-agent').value;
    if (!user) return say('Choose an agent: add one on the Agents page first.', 'error');
    try {
      const d = await api('test-lead', { key_name: $('test-key').value.trim(),
                                         query: testQuery(setup.dispo, user) }, 'POST');
      const status = $('test-status');
      status.className = 'badge ' + statusClass(d.status);
      status.textContent = String(d.status);
      let body = d.body;
      if (typeof body === 'string') {
        try { body = JSON.parse(body); } catch (e) { /* shown as it came */ }
      }
      $('test-body').textContent = pretty(body);
      $('test-result').hidden = false;
      say(`Test lead sent: the dialer endpoint answered ${d.status}.`,
          d.status < 300 ? 'ok' : 'error');
    } catch (err) {
      fail(err, 'Test lead');
    }
  }

  // Copy: the Clipboard API where the browser allows it (a secure context), else the text
  // selected and the browser's copy command, else selected for Ctrl+C.
  async function onCopy(ev) {
    const area = $(ev.currentTarget.dataset.copy);
    const name = ev.currentTarget.textContent.replace(/^Copy /, '');
    if (!area.value) return say('Nothing to copy yet.', 'error');
    try {
      await navigator.clipboard.writeText(area.value);
      return say(name + ' copied.', 'ok');
    } catch (e) { /* fall back below */ }
    area.focus();
    area.select();
    let copied = false;
    try { copied = document.execCommand('copy'); } catch (e) { copied = false; }
    say(copied ? name + ' copied.' : name + ' is selected: press Ctrl+C to copy it.',
        copied ? 'ok' : null);
  }

  // ------------------------------------------------------------------ health

  const health = { timer: null };

  async function healthEnter() {
    await healthLoad();
  }
  function healthLeave() {
    clearTimeout(health.timer);
    health.timer = null;
  }

  async function healthLoad() {
    clearTimeout(health.timer);
    try {
      const d = await api('health');
      if (current !== 'health') return;
      $('health-facts').replaceChildren(...healthFacts(d).childNodes);
      $('health-chart').replaceChildren(chart(d.minutes || []));
    } catch (err) {
      fail(err, 'Health');
    }
    if (current === 'health') health.timer = setTimeout(healthLoad, HEALTH_MS);
  }

  // The shim's additions (database, pool, spool) are shown as they come: a word, a number or
  // an object's name: value pairs.
  function describe(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v !== 'object') return String(v);
    return Object.entries(v).map(([k, x]) => k.replace(/_/g, ' ') + ': ' + describe(x)).join(', ');
  }
  function dbState(v) {
    const ok = v === true || v === 'ok' || v === 'up' || (v && typeof v === 'object'
               && (v.reachable === true || v.ok === true || v.status === 'ok'));
    const bad = v === false || v === 'down' || v === 'unreachable' || (v && typeof v === 'object'
               && (v.reachable === false || v.ok === false));
    return el('span', { class: ok ? 'state-ok' : bad ? 'state-bad' : null,
                        text: v === true ? 'reachable' : v === false ? 'unreachable' : describe(v) });
  }

  // The shim's shapes (docs/console.md) in words; anything else as describe() gives it.
  function poolText(p) {
    return p && typeof p === 'object' && 'size' in p && 'busy' in p
      ? `${p.busy} of ${p.size} connections busy` : describe(p);
  }
  function spoolText(s) {
    if (!s || typeof s !== 'object' || !('enabled' in s)) return describe(s);
    return s.enabled ? `${s.depth} request${s.depth === 1 ? '' : 's'} waiting`
                     : 'off (no --spool-dir)';
  }

  function healthFacts(d) {
    return facts([
      ['Database', dbState(d.database)],
      ['Pool', poolText(d.pool)],
      ['Spool', spoolText(d.spool)],
      ['Requests, last hour', dash(d.requests)],
      ['Failures, last hour', dash(d.failures)],
      ['Last request', d.last_request_at ? timeEl(d.last_request_at) : 'none yet'],
    ]);
  }

  // Bars per minute, oldest on the left. The viewBox is the box's width when drawn (text at
  // its real size on a phone too) and a fixed height: a redraw never changes the layout.
  // Presentation attributes only (CSP).
  function chart(minutes) {
    const W = Math.max(280, Math.round($('health-chart').clientWidth) || 600);
    const H = 160, left = 34, top = 10, bottom = 20;
    const plotH = H - top - bottom;
    const slot = (W - left) / Math.max(minutes.length, 60);
    const max = Math.max(1, ...minutes.map((m) => m.requests || 0));
    const total = minutes.reduce((s, m) => s + (m.requests || 0), 0);
    const failed = minutes.reduce((s, m) => s + (m.failures || 0), 0);
    const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img',
      'aria-label': `${total} requests and ${failed} failures in the last hour; busiest minute ${max}` });
    const y = (v) => top + plotH - (v / max) * plotH;
    svg.append(
      svgEl('line', { class: 'axis', x1: left, x2: W, y1: top + plotH, y2: top + plotH }),
      svgEl('line', { class: 'axis', x1: left, x2: W, y1: top, y2: top }),
      label(left - 4, top + 4, String(max), 'end'),
      label(left - 4, top + plotH + 4, '0', 'end'),
      label(left, H - 4, '60 min ago', 'start'),
      label(W, H - 4, 'now', 'end'));
    minutes.forEach((m, i) => {
      const x = left + i * slot + 0.5;
      const w = Math.max(slot - 1.5, 1);
      const when = fmtTime(m.minute).slice(-8, -3);
      const title = svgEl('title', {});
      title.textContent = `${when}: ${m.requests} requests, ${m.failures} failed`;
      const g = svgEl('g', {}, title);
      if (m.requests) {
        g.append(svgEl('rect', { class: 'bar-req', x, width: w, y: y(m.requests),
                                 height: (m.requests / max) * plotH }));
      }
      if (m.failures) {
        g.append(svgEl('rect', { class: 'bar-fail', x, width: w, y: y(m.failures),
                                 height: (m.failures / max) * plotH }));
      }
      svg.append(g);
    });
    return svg;
  }
  function label(x, y, text, anchor) {
    const t = svgEl('text', { class: 'label', x, y, 'text-anchor': anchor });
    t.textContent = text;
    return t;
  }

  // ------------------------------------------------------------------ start

  function wire() {
    $('skip').addEventListener('click', (ev) => {
      ev.preventDefault();   // the hash is the route: focus the view instead of following it
      const h = current ? $('h-' + current) : $('signin-key');
      (h || $('main')).focus();
    });
    $('signin-form').addEventListener('submit', onSignIn);
    $('sign-out').addEventListener('click', onSignOut);
    $('req-filters').addEventListener('submit', (ev) => { ev.preventDefault(); reqReload(); });
    $('f-status').addEventListener('change', reqReload);
    $('f-agent').addEventListener('input', onFilterInput);
    $('f-q').addEventListener('input', onFilterInput);
    $('live').addEventListener('change', () => liveState($('live').checked ? 'on' : ''));
    $('req-older').addEventListener('click', reqOlder);
    $('fail-refresh').addEventListener('click', failuresLoad);
    $('agent-add').addEventListener('submit', onAgentAdd);
    $('agent-edit').addEventListener('submit', onAgentEdit);
    $('edit-cancel').addEventListener('click', () => closeEdit(true));
    $('agent-edit').addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') closeEdit(true);
    });
    $('setup-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      setupLoad($('setup-base').value.trim());
    });
    $('test-form').addEventListener('submit', onTestLead);
    for (const b of document.querySelectorAll('button.copy')) b.addEventListener('click', onCopy);
    $('health-refresh').addEventListener('click', healthLoad);
    window.addEventListener('hashchange', () => route(true));
  }

  async function start() {
    wire();
    try {
      signedIn(await api('session'), false);
    } catch (err) {
      signedOut();
      if (err.status !== 401) fail(err);
    }
  }

  start();
})();
