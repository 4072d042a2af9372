// The review page. Everything the server sends is data: it reaches the DOM
// through textContent and attributes only, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'mandate-review-token';
  const POLL_MS = 1000;

  const $ = (id) => document.getElementById(id);
  /** approval_id -> card state */
  const cards = new Map();
  let token = sessionStorage.getItem(TOKEN_KEY);
  // Bumped on every sign-in and sign-out so an old polling loop stops.
  let generation = 0;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + token };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'cannot reach the review server; retrying');
    }
    let data = null;
    try {
      data = await response.json();
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
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const card of cards.values()) card.el.remove();
    cards.clear();
    $('main').hidden = true;
    $('session').hidden = true;
    $('sign-in-form').hidden = false;
    $('token').value = '';
    $('token').focus();
    showError(message);
  }

  async function signIn(candidate) {
    token = candidate;
    try {
      const who = await api('GET', '/api/whoami');
      sessionStorage.setItem(TOKEN_KEY, candidate);
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
      } else {
        showSignIn(e.message);
        // Keep what was typed: the server may only be restarting.
        $('token').value = candidate;
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
        return;
      }
      showError(e.message);
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
      const off = card.busy || card.keep;
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
    setInterval(tick, 250);
    if (token) {
      signIn(token);
    } else {
      showSignIn('');
    }
  });
})();
