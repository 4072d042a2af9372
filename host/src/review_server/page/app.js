// The review page. Everything the server sends is data: it reaches the DOM
// through textContent and attributes only, never as HTML.
'use strict';

(() => {
  // The page never sends the reviewer's token: it keeps only a key derived
  // from it, has the server prove it knows that key before anything else is
  // sent, and signs each request in that session (see auth.rs). A server
  // that cannot prove it learns nothing it can use.
  const KEY_STORE = 'mandate-review-key';
  const POLL_MS = 1000;
  const HEX32 = /^[0-9a-f]{32}$/;
  const enc = new TextEncoder();

  const $ = (id) => document.getElementById(id);
  /** approval_id -> card state */
  const cards = new Map();
  /** HMAC-SHA256(token, "mandate-review/key"), in this tab only */
  let pageKey = fromHex(sessionStorage.getItem(KEY_STORE));
  /** {id, key, seq} once a server proved it knows pageKey */
  let session = null;
  // Bumped on every sign-in, sign-out and lost connection so an old polling
  // loop stops.
  let generation = 0;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function fromHex(text) {
    if (typeof text !== 'string' || !/^[0-9a-f]{64}$/.test(text)) return null;
    const bytes = new Uint8Array(32);
    for (let i = 0; i < 32; i += 1) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
    return bytes;
  }

  async function hmac(keyBytes, text) {
    const key = await crypto.subtle.importKey(
      'raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'],
    );
    return new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(text)));
  }

  async function sha256Hex(bytes) {
    return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
  }

  /** Proves the server at this address knows pageKey, and opens a session. */
  async function handshake() {
    if (!window.crypto || !crypto.subtle) {
      throw new ApiError(-1, 'this page needs a secure context (a loopback address or https) to sign requests');
    }
    session = null;
    const clientNonce = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const keyId = toHex((await hmac(pageKey, 'mandate-review/id')).slice(0, 16));
    let response;
    try {
      response = await fetch('/api/handshake', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ key_id: keyId, client_nonce: clientNonce }),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'cannot reach the review server');
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (response.status === 401) {
      throw new ApiError(401, data && typeof data.error === 'string' ? data.error : 'the token is not valid');
    }
    const shaped = response.ok && data && typeof data.session === 'string' && HEX32.test(data.session)
      && typeof data.server_nonce === 'string' && HEX32.test(data.server_nonce)
      && typeof data.proof === 'string';
    const expected = shaped
      ? toHex(await hmac(pageKey, 'mandate-review/server\n' + clientNonce + '\n' + data.server_nonce))
      : null;
    if (!shaped || data.proof !== expected) {
      throw new ApiError(-1, 'the server at this address did not prove that it knows your token, so it may not be the review server; nothing else was sent to it');
    }
    session = {
      id: data.session,
      key: await hmac(pageKey, 'mandate-review/session\n' + clientNonce + '\n' + data.server_nonce),
      seq: 0,
    };
  }

  /** One request signed in the session; the answer counts only if signed too. */
  async function api(method, path, body) {
    const mine = session;
    if (!mine) throw new ApiError(-1, 'not connected to the review server');
    mine.seq += 1;
    const seq = mine.seq;
    const text = body === undefined ? '' : JSON.stringify(body);
    const mac = toHex(await hmac(
      mine.key,
      ['mandate-review/request', method, path, seq, await sha256Hex(enc.encode(text))].join('\n'),
    ));
    const headers = { Authorization: 'Mandate-MAC ' + mine.id + '.' + seq + '.' + mac };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = text;
    }
    let response;
    let raw;
    try {
      response = await fetch(path, init);
      raw = new Uint8Array(await response.arrayBuffer());
    } catch (e) {
      throw new ApiError(0, 'cannot reach the review server');
    }
    const expected = toHex(await hmac(
      mine.key,
      ['mandate-review/response', seq, response.status, await sha256Hex(raw)].join('\n'),
    ));
    if (response.headers.get('X-Mandate-Mac') !== expected) {
      throw new ApiError(-1, response.status === 401
        ? 'the review server no longer knows this page (it restarted?)'
        : 'an answer was not signed by the review server');
    }
    let data = null;
    try {
      data = JSON.parse(new TextDecoder().decode(raw));
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const message = data && typeof data.error === 'string'
        ? data.error
        : 'the server answered ' + response.status;
      throw new ApiError(response.status, message);
    }
    return data;
  }

  function showError(message) {
    const box = $('error');
    box.textContent = message || '';
    box.hidden = !message;
  }

  function showSignIn(message) {
    generation += 1;
    pageKey = null;
    session = null;
    sessionStorage.removeItem(KEY_STORE);
    for (const card of cards.values()) card.el.remove();
    cards.clear();
    $('main').hidden = true;
    $('session').hidden = true;
    $('reconnect').hidden = true;
    $('sign-in-form').hidden = false;
    $('token').value = '';
    $('token').focus();
    showError(message);
  }

  /**
   * The connection is gone or the answer is not the server's: nothing more
   * is sent until the reviewer asks to reconnect.
   */
  function lost(message) {
    generation += 1;
    session = null;
    showError(message + '; nothing more is sent until you reconnect');
    $('reconnect').hidden = false;
    tick();
  }

  async function signIn(token) {
    pageKey = await hmac(enc.encode(token), 'mandate-review/key');
    sessionStorage.setItem(KEY_STORE, toHex(pageKey));
    await connect();
  }

  async function connect() {
    $('reconnect').hidden = true;
    try {
      await handshake();
      const who = await api('GET', '/api/whoami');
      $('whoami').textContent = who.reviewer;
      $('session').hidden = false;
      $('sign-in-form').hidden = true;
      $('main').hidden = false;
      showError('');
      generation += 1;
      poll(generation);
    } catch (e) {
      if (e.status === 401) {
        showSignIn('That token is not accepted: ' + e.message);
      } else if ($('main').hidden) {
        // Not signed in yet: the reviewer can retry from the form.
        showSignIn(e.message);
      } else {
        lost(e.message);
      }
    }
  }

  async function poll(mine) {
    if (mine !== generation) return;
    try {
      const list = await api('GET', '/api/pending');
      if (mine !== generation) return;
      render(list);
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      showError('');
    } catch (e) {
      if (mine !== generation) return;
      if (e.status === 401) {
        showSignIn('The server no longer accepts this token: ' + e.message);
      } else {
        lost(e.message);
      }
      return;
    }
    setTimeout(() => poll(mine), POLL_MS);
  }

  function render(list) {
    const listed = new Set();
    for (const item of list) {
      const id = item.pending.approval_id;
      listed.add(id);
      let card = cards.get(id);
      if (!card) {
        card = buildCard(item);
        cards.set(id, card);
        $('approvals').appendChild(card.el);
      }
      card.deadlineAt = performance.now() + item.seconds_left * 1000;
    }
    for (const [id, card] of cards) {
      // A card showing an error stays until its reviewer has read it.
      if (!listed.has(id) && !card.busy && !card.keep) {
        card.el.remove();
        cards.delete(id);
      }
    }
    const waiting = list.length;
    $('count').textContent = waiting === 1 ? '1 call waiting;' : waiting + ' calls waiting;';
    $('empty').hidden = cards.size > 0;
    tick();
  }

  function text(el, selector, value) {
    el.querySelector(selector).textContent = value;
  }

  function isRedacted(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      && typeof value.redacted === 'string';
  }

  function showValue(value) {
    return JSON.stringify(value, (key, v) => (isRedacted(v) ? 'redacted' : v), 2);
  }

  function fillArguments(tbody, args) {
    const entries = args !== null && typeof args === 'object' && !Array.isArray(args)
      ? Object.entries(args)
      : [['', args]];
    for (const [name, value] of entries) {
      const row = document.createElement('tr');
      const key = document.createElement('th');
      key.textContent = name;
      const cell = document.createElement('td');
      if (isRedacted(value)) {
        cell.textContent = 'redacted';
        cell.className = 'redacted';
        cell.title = 'the value is not shown to reviewers; the log keeps a commitment to it';
      } else {
        const pre = document.createElement('pre');
        pre.textContent = showValue(value);
        cell.appendChild(pre);
      }
      row.append(key, cell);
      tbody.appendChild(row);
    }
  }

  /** The clear values the host gave this reviewer, below the arguments. */
  function fillRevealed(tbody, revealed) {
    if (!Array.isArray(revealed)) return;
    for (const entry of revealed) {
      if (!entry || typeof entry.path !== 'string') continue;
      const row = document.createElement('tr');
      row.className = 'revealed';
      const key = document.createElement('th');
      key.textContent = entry.path + ' (in clear)';
      const cell = document.createElement('td');
      cell.title = 'shown to you only while the call is held; the log and the queue keep only a commitment';
      const pre = document.createElement('pre');
      pre.textContent = typeof entry.value === 'string' ? entry.value : JSON.stringify(entry.value, null, 2);
      cell.appendChild(pre);
      row.append(key, cell);
      tbody.appendChild(row);
    }
  }

  function buildCard(item) {
    const p = item.pending;
    const el = $('approval-template').content.firstElementChild.cloneNode(true);
    el.dataset.approvalId = p.approval_id;
    text(el, '.tool', p.tool);
    text(el, '.resource', p.resource);
    text(el, '.user', p.user.email ? p.user.id + ' <' + p.user.email + '>' : p.user.id);
    text(el, '.agent', p.agent.name + ' ' + p.agent.version + ' (' + p.agent.id + ')');
    text(el, '.chain', p.delegation_chain.map((d) => d.kind + ':' + d.id).join(' \u2192 '));
    text(el, '.call', p.call_id + ' in session ' + p.session_id + ', deadline ' + p.deadline);
    const policies = el.querySelector('.policies');
    for (const policy of p.demanded_by) {
      const li = document.createElement('li');
      const id = document.createElement('code');
      id.textContent = policy.id;
      li.appendChild(id);
      if (policy.reason) {
        const reason = document.createElement('span');
        reason.className = 'policy-reason';
        reason.textContent = policy.reason;
        li.append(': ', reason);
      }
      policies.appendChild(li);
    }
    fillArguments(el.querySelector('.arguments tbody'), p.arguments);
    fillRevealed(el.querySelector('.arguments tbody'), item.revealed);

    const card = {
      id: p.approval_id,
      tool: p.tool,
      el,
      deadlineAt: performance.now() + item.seconds_left * 1000,
      busy: false,
      keep: false,
      reason: el.querySelector('.reason'),
      scope: el.querySelector('.scope'),
      approve: el.querySelector('.approve'),
      deny: el.querySelector('.deny'),
      error: el.querySelector('.card-error'),
      countdown: el.querySelector('.countdown'),
    };
    el.querySelector('form').addEventListener('submit', (e) => e.preventDefault());
    card.approve.addEventListener('click', () => decide(card, 'approve'));
    card.deny.addEventListener('click', () => decide(card, 'deny'));
    return card;
  }

  function secondsLeft(card) {
    return Math.max(0, Math.floor((card.deadlineAt - performance.now()) / 1000));
  }

  function tick() {
    for (const card of cards.values()) {
      const left = secondsLeft(card);
      const late = left <= 0;
      const minutes = Math.floor(left / 60);
      const seconds = String(left % 60).padStart(2, '0');
      card.countdown.textContent = late ? 'deadline passed' : minutes + ':' + seconds + ' left';
      card.countdown.classList.toggle('urgent', left < 30);
      card.el.classList.toggle('late', late);
      const off = card.busy || card.keep || !session;
      card.approve.disabled = off;
      card.deny.disabled = off;
    }
  }

  function cardError(card, message) {
    card.keep = true;
    card.error.textContent = message;
    card.error.hidden = false;
    const dismiss = document.createElement('button');
    dismiss.type = 'button';
    dismiss.className = 'dismiss';
    dismiss.textContent = 'Dismiss';
    dismiss.addEventListener('click', () => {
      card.el.remove();
      cards.delete(card.id);
      $('empty').hidden = cards.size > 0;
    });
    card.error.append(' ', dismiss);
  }

  async function decide(card, verdict) {
    if (card.busy || card.keep) return;
    const body = {};
    const reason = card.reason.value.trim();
    if (reason) body.reason = reason;
    if (verdict === 'approve') body.scope = card.scope.value;
    card.busy = true;
    tick();
    try {
      const decided = await api(
        'POST',
        '/api/approvals/' + encodeURIComponent(card.id) + '/' + verdict,
        body,
      );
      card.el.remove();
      cards.delete(card.id);
      noteDecided(decided);
    } catch (e) {
      if (e.status === 401) {
        showSignIn('The server did not accept the token; nothing was decided: ' + e.message);
        return;
      }
      if (e.status <= 0) lost(e.message);
      const late = e.status === 409 ? 'Not recorded: ' : 'Not recorded (' + (e.status || 'no answer') + '): ';
      cardError(card, late + e.message);
    } finally {
      card.busy = false;
      $('empty').hidden = cards.size > 0;
      tick();
    }
  }

  function noteDecided(decided) {
    const li = document.createElement('li');
    li.className = 'decided ' + decided.status;
    li.dataset.approvalId = decided.pending.approval_id;
    let line = decided.status + ': ' + decided.pending.tool + ' (' + decided.pending.call_id + ') by '
      + decided.reviewer;
    if (decided.scope === 'session' && decided.status === 'approved') line += ', for the session';
    if (decided.reason) line += ', "' + decided.reason + '"';
    li.textContent = line;
    $('decided-list').prepend(li);
    $('decided').hidden = false;
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('sign-in-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const candidate = $('token').value.trim();
      if (candidate) signIn(candidate);
    });
    $('sign-out').addEventListener('click', () => showSignIn(''));
    $('reconnect').addEventListener('click', () => connect());
    setInterval(tick, 250);
    if (pageKey) {
      connect();
    } else {
      showSignIn('');
    }
  });
})();
