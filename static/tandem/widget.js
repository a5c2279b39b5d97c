/*!
 * Tandem web chat widget — protocol v1.
 *
 * Embed with one tag:
 *   <script src="https://support.example.com/static/tandem/widget.js"
 *           data-server="https://support.example.com"
 *           data-title="Example support" defer></script>
 *
 * Optional attributes: data-server (http(s) base URL; default: origin of the
 * script src), data-title (default "Support"), data-open="true" (start open),
 * data-css (stylesheet URL; default: widget.css next to this script).
 *
 * Plain ES2019, no dependencies, no build step. Everything coming from the
 * server or the user is rendered as text (textContent / text nodes), never as
 * HTML.
 */
(() => {
  'use strict';

  const VERSION = '1';
  const MAX_LEN = 2000;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const HANDSHAKE_TIMEOUT_MS = 15000;
  const CSS_REVEAL_TIMEOUT_MS = 3000;
  // A message the server failed on (error code server_error) is sent again this often, this long apart.
  const SERVER_ERROR_RETRIES = 3;
  const SERVER_ERROR_RETRY_MS = 2000;
  // A customer message the server has not answered in this long is sent again (same id: stored once).
  const ANSWER_TIMEOUT_MS = 20000;
  const TIERS = ['small', 'large', 'agent'];
  // How long "… is typing" stays after the last notice.
  const TYPING_MS = 5000;
  // The longest rating comment the server takes (docs/protocol.md, "rating").
  const MAX_COMMENT_LEN = 1000;
  // Thumbs (Feather icons, MIT).
  const THUMB_UP = 'M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3';
  const THUMB_DOWN = 'M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17';

  // ---------------------------------------------------------------- config --

  // document.currentScript must be read synchronously, before anything async.
  const script = findOwnScript();
  const data = (script && script.dataset) || {};
  const scriptSrc = script && script.src ? script.src : '';

  function findOwnScript() {
    const cur = document.currentScript;
    if (cur && cur.tagName === 'SCRIPT') return cur;
    const all = document.getElementsByTagName('script');
    for (let i = all.length - 1; i >= 0; i--) {
      const src = (all[i].getAttribute('src') || '').split(/[?#]/)[0];
      if (/tandem\/widget\.js$/.test(src)) return all[i];
    }
    return null;
  }

  function resolveServerBase() {
    let fallback = location.origin;
    try {
      if (scriptSrc) fallback = new URL(scriptSrc, location.href).origin;
    } catch (e) { /* keep location.origin */ }
    let url;
    try {
      url = new URL((data.server || '').trim() || fallback, location.href);
    } catch (e) {
      url = new URL(fallback);
    }
    // Scheme + host + path prefix, no query/hash, no trailing slash.
    return (url.protocol + '//' + url.host + url.pathname).replace(/\/+$/, '');
  }

  const serverBase = resolveServerBase();
  const title = (data.title || '').trim() || 'Support';
  const startOpen = String(data.open || '').toLowerCase() === 'true';
  const STORAGE_KEY = 'tandem:token:' + serverBase;

  function buildSocketUrl(after) {
    // http://host/prefix -> ws://host/prefix/ws/chat/ ; https -> wss.
    const base = /^wss?:/i.test(serverBase) ? serverBase : serverBase.replace(/^http/i, 'ws');
    const params = new URLSearchParams();
    params.set('after', String(after));
    return base + '/ws/chat/?' + params.toString();
  }

  // The token travels as a WebSocket subprotocol (a header no access log writes), never in the URL.
  function socketProtocols(token) {
    const protocols = ['tandem.v1'];
    if (token) {
      try {
        const encoded = btoa(token).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        protocols.push('tandem.token.' + encoded);
      } catch (e) { /* not a token of ours (not ASCII): start a new conversation */ }
    }
    return protocols;
  }

  function loadToken() {
    try { return window.localStorage.getItem(STORAGE_KEY) || null; } catch (e) { return null; }
  }

  function saveToken(token) {
    try { window.localStorage.setItem(STORAGE_KEY, token); } catch (e) { /* private mode etc. */ }
  }

  // ----------------------------------------------------------------- state --

  const state = {
    token: loadToken(),   // token we will send on the next connect
    sentToken: null,      // token sent on the current connection
    conversation: null,
    lastSeq: 0,           // highest stored seq shown
    ws: null,
    online: false,        // session frame received on the current socket
    everOnline: false,
    attempt: 0,
    reconnectTimer: null,
    handshakeTimer: null,
    unloading: false,
    open: false,
    slowUntil: 0,         // flood control asked us to wait until then (ms since the epoch)
    retryAfterMs: 0,      // the server refused the connection: reconnect no sooner than this
    holdUntil: 0,         // send no customer message before this (ms since the epoch)
    holdTimer: null,
    inFlight: null,       // the customer message sent and not yet answered (one at a time)
    inFlightWs: null,     // the socket it went on
    inFlightTimer: null,
  };
  // client id -> {id, text, el, acked, failed}; Map keeps send order.
  const messages = new Map();
  const streams = new Map();    // reply_to -> {el, textNode}
  const answered = new Set();   // reply_to ids that got a final answer
  const escalated = new Map();  // reply_to id -> destination ('large' or 'people') it waits for
  // Ratings, keyed by the reply_to of the answers rated ('' for the whole conversation).
  const ratings = new Map();         // key -> {score, comment} the server saved
  const rateControls = new Map();    // key -> the thumbs control shown for it
  const pendingRatings = new Map();  // rating frame id -> {key, score, comment, retries} not yet saved
  let controlCount = 0;

  // -------------------------------------------------------------------- DOM --

  function h(tag, className, attrs) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (attrs) {
      Object.keys(attrs).forEach((k) => el.setAttribute(k, attrs[k]));
    }
    return el;
  }

  function svgIcon(className, paths) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('class', className);
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '24');
    svg.setAttribute('height', '24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    paths.forEach((d) => {
      const p = document.createElementNS(NS, 'path');
      p.setAttribute('d', d);
      svg.appendChild(p);
    });
    return svg;
  }

  const root = h('div', 'tandem-root', { id: 'tandem-widget' });

  const launcher = h('button', 'tandem-launcher', {
    type: 'button',
    'aria-label': 'Open support chat',
    'aria-expanded': 'false',
    'aria-controls': 'tandem-panel',
  });
  launcher.appendChild(svgIcon('tandem-icon tandem-icon-chat', [
    'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z',
  ]));
  launcher.appendChild(svgIcon('tandem-icon tandem-icon-close', ['M6 6l12 12M18 6L6 18']));

  const panel = h('div', 'tandem-panel', {
    id: 'tandem-panel',
    role: 'region',
    'aria-label': title,
  });
  panel.hidden = true;

  const header = h('div', 'tandem-header');
  const titleEl = h('div', 'tandem-title');
  titleEl.textContent = title;
  const closeBtn = h('button', 'tandem-close', { type: 'button', 'aria-label': 'Close chat' });
  closeBtn.appendChild(svgIcon('tandem-icon', ['M6 6l12 12M18 6L6 18']));
  header.appendChild(titleEl);
  header.appendChild(closeBtn);

  const empty = h('div', 'tandem-empty');
  empty.textContent = 'Hi! Ask us anything \u2014 we usually answer right away.';

  const log = h('div', 'tandem-log', {
    role: 'log',
    'aria-live': 'polite',
    'aria-label': 'Conversation',
    tabindex: '0',
  });

  const status = h('div', 'tandem-status', { role: 'status', 'data-state': 'connecting' });

  const form = h('form', 'tandem-form', { novalidate: '' });
  const inputLabel = h('label', 'tandem-sr-only', { for: 'tandem-input' });
  inputLabel.textContent = 'Type your message';
  const input = h('textarea', 'tandem-input', {
    id: 'tandem-input',
    name: 'tandem-message',
    maxlength: String(MAX_LEN),
    rows: '1',
    placeholder: 'Type your message\u2026',
    autocomplete: 'off',
  });
  const sendBtn = h('button', 'tandem-send', { type: 'submit', 'aria-label': 'Send message' });
  sendBtn.appendChild(svgIcon('tandem-icon', ['M3 20l18-8L3 4v6l12 2-12 2z']));
  form.appendChild(inputLabel);
  form.appendChild(input);
  form.appendChild(sendBtn);

  panel.appendChild(header);
  panel.appendChild(empty);
  panel.appendChild(log);
  panel.appendChild(status);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(launcher);

  // -------------------------------------------------------------- bubbles --

  function makeBubble(kind, text) {
    const el = h('div', 'tandem-msg');
    el.setAttribute('data-kind', kind);
    const span = h('span', 'tandem-text');
    const node = document.createTextNode(text == null ? '' : String(text));
    span.appendChild(node);
    el.appendChild(span);
    return el;
  }

  function setBubbleText(el, text) {
    const span = el.querySelector('.tandem-text');
    span.textContent = text == null ? '' : String(text);
  }

  function setMeta(el, text) {
    let meta = el.querySelector('.tandem-meta');
    if (!meta) {
      meta = h('div', 'tandem-meta');
      el.appendChild(meta);
    }
    meta.textContent = text;
  }

  // The articles a large-model answer was based on, when the server shows them (TANDEM_SHOW_SOURCES).
  function sourcesLabel(sources) {
    if (!Array.isArray(sources)) return '';
    const titles = sources
      .map(function (source) { return source && typeof source.title === 'string' ? source.title.trim() : ''; })
      .filter(function (title) { return title; })
      .slice(0, 5);
    return titles.length ? ' · Sources: ' + titles.join('; ') : '';
  }

  function tierLabel(tier, agent) {
    if (tier === 'small') return 'Answered instantly';
    if (tier === 'agent') {
      const name = typeof agent === 'string' && agent.trim() ? agent.trim() : 'a support agent';
      return 'Answered by ' + name;
    }
    if (typeof agent === 'string' && agent.trim()) return 'Answered by our AI assistant, checked by ' + agent.trim();
    return 'Answered by our AI assistant';
  }

  // Stored (sequenced) content goes before customer messages that are still
  // pending, so the log keeps the server's order.
  function placeStored(el) {
    const firstPending = log.querySelector('.tandem-msg.tandem-pending');
    if (el.parentNode !== log) {
      if (firstPending) log.insertBefore(el, firstPending);
      else log.appendChild(el);
    } else if (firstPending && firstPending !== el &&
               (firstPending.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING)) {
      log.insertBefore(el, firstPending);
    }
    contentChanged();
  }

  function appendLive(el) {
    log.appendChild(el);
    contentChanged();
  }

  function contentChanged() {
    empty.hidden = !!log.querySelector('.tandem-msg');
    scrollToBottom();
  }

  function scrollToBottom() {
    log.scrollTop = log.scrollHeight;
  }

  // --------------------------------------------------------------- status --

  function updateStatus() {
    let st;
    let text;
    if (!state.online) {
      st = state.everOnline ? 'reconnecting' : 'connecting';
      text = state.everOnline ? 'Reconnecting\u2026' : 'Connecting\u2026';
    } else if (Date.now() < (state.slowUntil || 0)) {
      st = 'slow-down';
      text = 'You\u2019re sending messages quickly \u2014 I\u2019ll send yours in a moment\u2026';
    } else if (Date.now() < (state.typingUntil || 0)) {
      st = 'agent-typing';
      text = state.typingName + ' is typing\u2026';
    } else if (escalated.size > 0) {
      const people = Array.from(escalated.values()).indexOf('people') >= 0;
      st = people ? 'waiting-for-people' : 'escalated';
      text = people ? 'Waiting for a member of our team\u2026' : 'Looking into this\u2026';
    } else {
      st = 'online';
      text = '';
    }
    status.setAttribute('data-state', st);
    if (status.textContent !== text) status.textContent = text;
    status.hidden = !text;
  }

  // ------------------------------------------------------------- messages --

  function newId() {
    const c = window.crypto;
    try {
      if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    } catch (e) { /* insecure context */ }
    // RFC 4122 v4 layout so servers that validate UUIDs accept it.
    const b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === 'function') {
      c.getRandomValues(b);
    } else {
      for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => (x < 16 ? '0' : '') + x.toString(16)).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' +
      hex.slice(16, 20) + '-' + hex.slice(20);
  }

  function cleanText(raw) {
    let text = String(raw == null ? '' : raw).trim();
    if (text.length > MAX_LEN) {
      text = text.slice(0, MAX_LEN);
      // Don't leave half of a surrogate pair at the end.
      const last = text.charCodeAt(text.length - 1);
      if (last >= 0xd800 && last <= 0xdbff) text = text.slice(0, -1);
      text = text.trim();
    }
    return text;
  }

  function send(raw) {
    const text = cleanText(raw);
    if (!text) return false;
    const id = newId();
    const el = makeBubble('customer', text);
    el.setAttribute('data-id', id);
    el.classList.add('tandem-pending');
    const m = { id, text, el, acked: false, failed: false };
    messages.set(id, m);
    appendLive(el);
    pump();
    return true;
  }

  // Customer messages leave one at a time, oldest first: the next goes once the server has answered the
  // one before (its ack, or an error). The server then stores them in the order they were typed even
  // when flood control refuses one (it is sent again after retry_after, and those typed after it wait
  // behind it) or a reconnect sends what was queued. The answer to a message takes milliseconds; a
  // person typing never waits on it.
  function nextToSend() {
    for (const m of messages.values()) {
      if (!m.acked && !m.failed) return m;
    }
    return null;
  }

  function pump() {
    const ws = state.ws;
    if (!ws || !state.online || ws.readyState !== 1 /* OPEN */) return; // queued: sent on (re)connect
    if (Date.now() < state.holdUntil) return; // flood control or a server error: the hold timer pumps
    const m = nextToSend();
    if (!m) return;
    if (state.inFlight === m && state.inFlightWs === ws) return; // waiting for the server's answer
    try {
      ws.send(JSON.stringify({ type: 'message', id: m.id, text: m.text }));
    } catch (e) {
      return; // the socket is closing: sent again on reconnect
    }
    state.inFlight = m;
    state.inFlightWs = ws;
    // No answer at all (a frame lost on the way): send it again; its id makes that safe.
    clearTimeout(state.inFlightTimer);
    state.inFlightTimer = setTimeout(() => {
      if (state.inFlight === m) state.inFlight = null;
      pump();
    }, ANSWER_TIMEOUT_MS);
  }

  // The server answered message m (stored, refused or failed): the next one may go.
  function answeredMessage(m) {
    if (state.inFlight !== m) return;
    state.inFlight = null;
    clearTimeout(state.inFlightTimer);
    state.inFlightTimer = null;
  }

  // Send nothing before `ms` from now, then go on from the oldest message not stored.
  function holdFor(ms) {
    state.holdUntil = Math.max(state.holdUntil, Date.now() + ms);
    clearTimeout(state.holdTimer);
    state.holdTimer = setTimeout(() => {
      state.holdTimer = null;
      pump();
    }, Math.max(0, state.holdUntil - Date.now()));
  }

  function flushOutbox() {
    state.inFlight = null; // a new socket: what was in flight on the old one goes again
    pump();
    // Sending a rating twice is harmless: the later one replaces the earlier.
    pendingRatings.forEach((r, id) => transmitRating(id));
  }

  // --------------------------------------------------------------- ratings --

  // Thumbs up / down with an optional comment, under an answer (key: its reply_to) or, after an agent
  // closed the conversation, for the whole of it (key ''). Saved by the server, which answers `rated`.
  function makeRateControl(key) {
    controlCount += 1;
    const forAnswer = key !== '';
    const box = h('div', 'tandem-rate', {
      role: 'group',
      'aria-label': forAnswer ? 'Rate this answer' : 'Rate this conversation',
    });
    const question = h('span', 'tandem-rate-question');
    question.textContent = forAnswer ? 'Helpful?' : 'How did we do?';
    const up = h('button', 'tandem-thumb', { type: 'button', 'aria-pressed': 'false', 'data-score': '1' });
    up.setAttribute('aria-label', forAnswer ? 'Helpful' : 'Good');
    up.setAttribute('title', up.getAttribute('aria-label'));
    up.appendChild(svgIcon('tandem-icon', [THUMB_UP]));
    const down = h('button', 'tandem-thumb', { type: 'button', 'aria-pressed': 'false', 'data-score': '-1' });
    down.setAttribute('aria-label', forAnswer ? 'Not helpful' : 'Not good');
    down.setAttribute('title', down.getAttribute('aria-label'));
    down.appendChild(svgIcon('tandem-icon', [THUMB_DOWN]));
    const commentForm = h('form', 'tandem-rate-form', { novalidate: '' });
    commentForm.hidden = true;
    const commentId = 'tandem-comment-' + controlCount;
    const commentLabel = h('label', 'tandem-sr-only', { for: commentId });
    commentLabel.textContent = 'Tell us more (optional)';
    const comment = h('textarea', 'tandem-comment', {
      id: commentId,
      maxlength: String(MAX_COMMENT_LEN),
      rows: '2',
      placeholder: 'Tell us more (optional)\u2026',
    });
    const submit = h('button', 'tandem-rate-send', { type: 'submit' });
    submit.textContent = 'Send';
    commentForm.appendChild(commentLabel);
    commentForm.appendChild(comment);
    commentForm.appendChild(submit);
    const note = h('div', 'tandem-rate-note');
    note.hidden = true;
    box.appendChild(question);
    box.appendChild(up);
    box.appendChild(down);
    box.appendChild(commentForm);
    box.appendChild(note);

    const control = { key, box, up, down, commentForm, comment, note };
    function thumb(score) {
      const saved = ratings.get(key);
      const typed = cleanComment(comment.value);
      rate(key, score, typed || (saved ? saved.comment : ''));
      showPressed(control, score);
      note.hidden = true;
      commentForm.hidden = false;
      if (!comment.value && saved && saved.comment) comment.value = saved.comment;
      revealInLog(box);
      comment.focus({ preventScroll: true });
    }
    up.addEventListener('click', () => thumb(1));
    down.addEventListener('click', () => thumb(-1));
    commentForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const score = Number(control.pressed);
      if (score !== 1 && score !== -1) return;
      rate(key, score, cleanComment(comment.value));
      commentForm.hidden = true;
      (score === 1 ? up : down).focus();
      showNote(control, 'Thanks for your feedback!');
    });
    comment.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        if (commentForm.requestSubmit) commentForm.requestSubmit();
        else submit.click();
      }
    });
    rateControls.set(key, control);
    const saved = ratings.get(key);
    if (saved) showSaved(control, saved);
    return control;
  }

  function cleanComment(raw) {
    let text = String(raw == null ? '' : raw).trim();
    if (text.length > MAX_COMMENT_LEN) {
      text = text.slice(0, MAX_COMMENT_LEN);
      const last = text.charCodeAt(text.length - 1);
      if (last >= 0xd800 && last <= 0xdbff) text = text.slice(0, -1);
    }
    return text.trim();
  }

  function showPressed(control, score) {
    control.pressed = score;
    control.up.setAttribute('aria-pressed', score === 1 ? 'true' : 'false');
    control.down.setAttribute('aria-pressed', score === -1 ? 'true' : 'false');
  }

  function showNote(control, text, failed) {
    control.note.textContent = text;
    control.note.hidden = !text;
    control.note.classList.toggle('tandem-rate-failed', !!failed);
    revealInLog(control.box);
  }

  // A control that grew (comment box, thanks) below the visible part of the log is scrolled into view,
  // within the log only (scrollIntoView would scroll the host page too).
  function revealInLog(el) {
    if (!el.isConnected || panel.hidden) return;
    const overflow = el.getBoundingClientRect().bottom - log.getBoundingClientRect().bottom;
    if (overflow > 0) log.scrollTop += overflow + 8;
  }

  function showSaved(control, saved) {
    showPressed(control, saved.score);
    if (control.commentForm.hidden) showNote(control, 'Thanks for your feedback!');
  }

  function ratingPending(key) {
    let found = false;
    pendingRatings.forEach((r) => { if (r.key === key) found = true; });
    return found;
  }

  function rate(key, score, comment) {
    // A newer rating of the same answer replaces one not sent yet.
    pendingRatings.forEach((r, id) => { if (r.key === key) pendingRatings.delete(id); });
    const id = newId();
    pendingRatings.set(id, { key, score, comment, retries: 0 });
    transmitRating(id);
  }

  function transmitRating(id) {
    const r = pendingRatings.get(id);
    const ws = state.ws;
    if (!r || !ws || !state.online || ws.readyState !== 1 /* OPEN */) return false; // sent on reconnect
    try {
      ws.send(JSON.stringify({ type: 'rating', id, reply_to: r.key || null, score: r.score, comment: r.comment }));
      return true;
    } catch (e) {
      return false;
    }
  }

  function onRated(f) {
    const key = f.reply_to == null ? '' : String(f.reply_to);
    const score = Number(f.score);
    if (score !== 1 && score !== -1) return;
    if (f.id != null) pendingRatings.delete(String(f.id));
    const saved = { score, comment: typeof f.comment === 'string' ? f.comment : '' };
    ratings.set(key, saved);
    const control = rateControls.get(key);
    // A newer click is on its way: its own `rated` will show.
    if (control && !ratingPending(key)) showSaved(control, saved);
  }

  // A rating the server refused (or could not take yet). True when `id` was one of ours.
  function onRatingError(id, f) {
    const r = pendingRatings.get(id);
    if (!r) return false;
    if (f.code === 'rate_limited' || (f.code === 'server_error' && r.retries < SERVER_ERROR_RETRIES)) {
      const seconds = Number(f.retry_after);
      const ms = f.code === 'rate_limited'
        ? Math.min(600, Math.max(1, isFinite(seconds) ? seconds : 5)) * 1000
        : SERVER_ERROR_RETRY_MS;
      r.retries += 1;
      setTimeout(() => transmitRating(id), ms);
      return true;
    }
    pendingRatings.delete(id);
    const control = rateControls.get(r.key);
    if (control) {
      const saved = ratings.get(r.key);
      showPressed(control, saved ? saved.score : 0);
      showNote(control, 'Sorry, we couldn\u2019t save your rating. Please try again.', true);
    }
    return true;
  }

  // The thumbs go under the latest answer to a message (a multi-part answer is rated as a whole).
  function offerRating(el, replyTo, intent) {
    if (!replyTo) return;
    if (typeof intent === 'string' && intent.indexOf('smalltalk-') === 0 && !rateControls.has(replyTo)) return;
    const control = rateControls.get(replyTo) || makeRateControl(replyTo);
    el.appendChild(control.box);
  }

  // After an agent closes the conversation: "How did we do?", once, after the latest close.
  function offerConversationRating() {
    let control = rateControls.get('');
    if (!control) {
      control = makeRateControl('');
      control.row = h('div', 'tandem-msg');
      control.row.setAttribute('data-kind', 'rating');
      control.row.appendChild(control.box);
    }
    if (control.row.parentNode) control.row.parentNode.removeChild(control.row);
    placeStored(control.row);
  }

  function resetConversation() {
    state.lastSeq = 0;
    streams.clear();
    answered.clear();
    escalated.clear();
    ratings.clear();
    rateControls.clear();
    pendingRatings.clear();
    // Keep messages the customer typed that the server has not stored yet;
    // they will be sent into the new conversation.
    const keep = [];
    messages.forEach((m, id) => {
      if (!m.acked && !m.failed) keep.push(m);
      else messages.delete(id);
    });
    while (log.firstChild) log.removeChild(log.firstChild);
    keep.forEach((m) => log.appendChild(m.el));
    contentChanged();
  }

  // ---------------------------------------------------------------- frames --

  function handleFrame(raw) {
    let f;
    try { f = JSON.parse(raw); } catch (e) { return; }
    if (!f || typeof f !== 'object') return;

    if (f.type === 'session') { onSession(f); return; }
    if (f.type === 'token') { onToken(f); return; }
    if (f.type === 'error') { onError(f); return; }
    if (f.type === 'typing') { onTyping(f); return; }
    if (f.type === 'rated') { onRated(f); return; }

    // Everything else is a stored event with a per-conversation seq.
    const seq = Number(f.seq);
    if (!Number.isFinite(seq)) return;
    if (seq <= state.lastSeq) {
      // Already shown, unless it is the stored ack of a message sent again whose first ack never came.
      const m = f.type === 'ack' && f.id != null ? messages.get(String(f.id)) : null;
      if (m && !m.acked) onAck(f, seq);
      return;
    }
    if (f.type === 'ack') onAck(f, seq);
    else if (f.type === 'answer') onAnswer(f, seq);
    else if (f.type === 'escalated') onEscalated(f, seq);
    else if (f.type === 'system' && typeof f.text === 'string') onSystem(f, seq);
    state.lastSeq = seq;
  }

  // An agent is writing a reply: shown for a few seconds after each notice (the desk sends one every
  // couple of seconds while the agent types).
  function onTyping(f) {
    const name = typeof f.agent === 'string' && f.agent.trim() ? f.agent.trim().slice(0, 40) : 'A support agent';
    state.typingName = name;
    state.typingUntil = Date.now() + TYPING_MS;
    updateStatus();
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(updateStatus, TYPING_MS + 50);
  }

  function onSession(f) {
    const token = typeof f.token === 'string' && f.token ? f.token : null;
    const conv = f.conversation == null ? null : String(f.conversation);
    const sameConversation = conv !== null && state.conversation !== null && conv === state.conversation;
    if (token !== state.sentToken && !sameConversation) resetConversation();
    state.conversation = conv;
    if (token) {
      state.token = token;
      saveToken(token);
    }
    state.sentToken = token;
    state.online = true;
    state.everOnline = true;
    state.attempt = 0;
    clearTimeout(state.handshakeTimer);
    state.handshakeTimer = null;
    updateStatus();
    flushOutbox();
  }

  function onAck(f, seq) {
    const id = f.id == null ? null : String(f.id);
    let m = id !== null ? messages.get(id) : null;
    if (!m) {
      const el = makeBubble('customer', typeof f.text === 'string' ? f.text : '');
      if (id !== null) el.setAttribute('data-id', id);
      m = { id, text: f.text, el, acked: true, failed: false };
      if (id !== null) messages.set(id, m);
    }
    m.acked = true;
    m.failed = false;
    m.el.classList.remove('tandem-pending', 'tandem-failed');
    m.el.classList.add('tandem-delivered');
    m.el.setAttribute('data-seq', String(seq));
    placeStored(m.el);
    answeredMessage(m);
    pump();
  }

  function onAnswer(f, seq) {
    const replyTo = f.reply_to == null ? '' : String(f.reply_to);
    const tier = TIERS.indexOf(f.tier) >= 0 ? f.tier : 'large';
    const stream = replyTo ? streams.get(replyTo) : null;
    let el;
    if (stream) {
      el = stream.el;
      streams.delete(replyTo);
      el.classList.remove('tandem-streaming');
      el.removeAttribute('aria-busy');
      setBubbleText(el, f.text);
    } else {
      el = makeBubble('answer', f.text);
    }
    el.setAttribute('data-tier', tier);
    el.setAttribute('data-seq', String(seq));
    if (replyTo) el.setAttribute('data-reply-to', replyTo);
    setMeta(el, tierLabel(tier, f.agent) + sourcesLabel(f.sources));
    offerRating(el, replyTo, f.intent);
    placeStored(el);
    if (replyTo) {
      answered.add(replyTo);
      escalated.delete(replyTo);
    }
    if (tier === 'agent') abandonOtherWork();
    if (f.agent) state.typingUntil = 0; // the reply the agent was typing is here
    updateStatus();
  }

  // A person has taken over: the large model's unfinished answers will not be sent (they become the
  // agent's drafts), so drop their partial bubbles and stop waiting on escalations.
  function abandonOtherWork() {
    streams.forEach(function (stream, replyTo) {
      stream.el.remove();
      answered.add(replyTo);
    });
    streams.clear();
    escalated.clear();
  }

  function onEscalated(f, seq) {
    const replyTo = f.reply_to == null ? '' : String(f.reply_to);
    // An answer that was being written and is now withdrawn (the large model failed, or the output
    // guard stopped it): its partial text goes.
    const withdrawn = replyTo ? streams.get(replyTo) : null;
    if (withdrawn) {
      withdrawn.el.remove();
      streams.delete(replyTo);
    }
    const reason = typeof f.reason === 'string' ? f.reason : '';
    // Servers before destinations existed sent only the reason.
    const destination = f.destination === 'people' || f.destination === 'large'
      ? f.destination
      : (reason === 'human_requested' || reason === 'sensitive' ? 'people' : 'large');
    const fallback = destination === 'people'
      ? 'I\u2019m passing you to a member of our team; they\u2019ll reply here as soon as they can.'
      : 'Let me look into that for you.';
    const text = typeof f.text === 'string' && f.text.trim() ? f.text : fallback;
    const el = makeBubble('escalated', text);
    el.setAttribute('data-seq', String(seq));
    if (reason) el.setAttribute('data-reason', reason);
    el.setAttribute('data-destination', destination);
    if (replyTo) el.setAttribute('data-reply-to', replyTo);
    placeStored(el);
    if (replyTo && !answered.has(replyTo)) escalated.set(replyTo, destination);
    updateStatus();
  }

  function onSystem(f, seq) {
    const el = makeBubble('system', f.text);
    el.setAttribute('data-seq', String(seq));
    if (typeof f.event === 'string') el.setAttribute('data-event', f.event);
    placeStored(el);
    if (f.event === 'closed') offerConversationRating();
  }

  function onToken(f) {
    const replyTo = f.reply_to == null ? '' : String(f.reply_to);
    if (!replyTo || answered.has(replyTo)) return;
    const delta = typeof f.text === 'string' ? f.text : '';
    let stream = streams.get(replyTo);
    // The answer is being written again from the start (the worker writing it stopped): what the
    // earlier tokens showed goes.
    if (stream && f.restart === true) stream.textNode.data = '';
    if (!stream) {
      const el = makeBubble('answer', '');
      el.setAttribute('data-tier', 'large');
      el.setAttribute('data-reply-to', replyTo);
      el.setAttribute('aria-busy', 'true');
      el.classList.add('tandem-streaming');
      stream = { el, textNode: el.querySelector('.tandem-text').firstChild };
      streams.set(replyTo, stream);
      placeStored(el);
    }
    if (delta) {
      stream.textNode.appendData(delta);
      scrollToBottom();
    }
  }

  function onError(f) {
    const id = f.id == null ? null : String(f.id);
    if (id !== null && onRatingError(id, f)) return;
    const pending = id === null ? null : messages.get(id);
    if (f.code === 'rate_limited') {
      // Flood control: nothing was lost. The message (or the connection) is tried again after
      // retry_after seconds, and the status line says why meanwhile.
      const seconds = Number(f.retry_after);
      const ms = Math.min(600, Math.max(1, isFinite(seconds) ? seconds : 5)) * 1000;
      state.slowUntil = Math.max(state.slowUntil || 0, Date.now() + ms);
      if (pending && !pending.acked) {
        answeredMessage(pending);
        holdFor(ms);
      } else if (id === null) state.retryAfterMs = ms;
      updateStatus();
      setTimeout(updateStatus, ms + 50);
      return;
    }
    if (f.code === 'server_error' && pending && !pending.acked && (pending.retries || 0) < SERVER_ERROR_RETRIES) {
      // The server failed on a valid message; sending it again is safe (its id is processed once).
      pending.retries = (pending.retries || 0) + 1;
      answeredMessage(pending);
      holdFor(SERVER_ERROR_RETRY_MS);
      return;
    }
    const text = typeof f.message === 'string' && f.message
      ? f.message
      : 'Something went wrong. Please try again.';
    const el = makeBubble('error', text);
    if (typeof f.code === 'string') el.setAttribute('data-code', f.code);
    if (id !== null) {
      el.setAttribute('data-reply-to', id);
      const m = pending;
      // The server rejected this message: don't resend it on reconnect.
      if (m && !m.acked) {
        m.failed = true;
        m.el.classList.remove('tandem-pending');
        m.el.classList.add('tandem-failed');
        answeredMessage(m);
      }
    }
    appendLive(el);
    pump();
  }

  // ------------------------------------------------------------ connection --

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.unloading) return;
    if (state.ws) dropSocket(state.ws);

    const sentToken = state.token;
    let ws;
    try {
      ws = new WebSocket(buildSocketUrl(state.lastSeq), socketProtocols(sentToken));
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    state.sentToken = sentToken;
    state.online = false;
    updateStatus();

    clearTimeout(state.handshakeTimer);
    state.handshakeTimer = setTimeout(() => {
      if (state.ws === ws && !state.online) socketGone(ws);
    }, HANDSHAKE_TIMEOUT_MS);

    ws.onmessage = (ev) => {
      if (state.ws === ws) handleFrame(ev.data);
    };
    ws.onclose = () => socketGone(ws);
    ws.onerror = () => { /* a close event follows */ };
  }

  function dropSocket(ws) {
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
    try { ws.close(); } catch (e) { /* ignore */ }
    if (state.ws === ws) {
      state.ws = null;
      state.online = false;
    }
  }

  function socketGone(ws) {
    if (state.ws !== ws) return;
    dropSocket(ws);
    clearTimeout(state.handshakeTimer);
    state.handshakeTimer = null;
    if (state.unloading) return;
    updateStatus();
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (state.reconnectTimer || state.unloading) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, Math.min(state.attempt, 10)));
    let delay = Math.min(BACKOFF_MAX_MS, Math.round(base * (0.75 + Math.random() * 0.5)));
    // The server refused the connection for now (rate_limited) and said how long to wait.
    delay = Math.max(delay, state.retryAfterMs || 0);
    state.retryAfterMs = 0;
    state.attempt += 1;
    state.reconnectTimer = setTimeout(connect, delay);
  }

  window.addEventListener('pagehide', () => {
    state.unloading = true;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    clearTimeout(state.handshakeTimer);
    state.handshakeTimer = null;
    if (state.ws) dropSocket(state.ws);
  });

  window.addEventListener('pageshow', (ev) => {
    // Restored from the back/forward cache: reconnect.
    if (ev.persisted && state.unloading) {
      state.unloading = false;
      state.attempt = 0;
      connect();
    }
  });

  window.addEventListener('online', () => {
    if (state.reconnectTimer) {
      state.attempt = 0;
      connect();
    }
  });

  // --------------------------------------------------------------- UI glue --

  function setOpen(open, moveFocus) {
    state.open = !!open;
    panel.hidden = !state.open;
    root.classList.toggle('tandem-is-open', state.open);
    launcher.setAttribute('aria-expanded', state.open ? 'true' : 'false');
    launcher.setAttribute('aria-label', state.open ? 'Close support chat' : 'Open support chat');
    if (state.open) {
      scrollToBottom();
      if (moveFocus) input.focus();
    } else if (moveFocus) {
      launcher.focus();
    }
  }

  function autoGrow() {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 120) + 'px';
  }

  function sendFromInput() {
    if (send(input.value)) {
      input.value = '';
      autoGrow();
    }
    input.focus();
  }

  launcher.addEventListener('click', () => setOpen(!state.open, true));
  closeBtn.addEventListener('click', () => setOpen(false, true));
  panel.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      setOpen(false, true);
    }
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    sendFromInput();
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      sendFromInput();
    }
  });
  input.addEventListener('input', autoGrow);

  // ----------------------------------------------------------------- mount --

  function injectStylesheet() {
    let href = (data.css || '').trim();
    if (!href && scriptSrc) href = scriptSrc.split(/[?#]/)[0].replace(/[^/]*$/, '') + 'widget.css';
    if (!href) return null;
    try { href = new URL(href, location.href).href; } catch (e) { return null; }
    const links = document.querySelectorAll('link[rel~="stylesheet"]');
    for (let i = 0; i < links.length; i++) {
      if (links[i].href === href) return null; // already there
    }
    const link = h('link', '', { rel: 'stylesheet', href });
    (document.head || document.documentElement).appendChild(link);
    return link;
  }

  function mount() {
    if (document.getElementById('tandem-widget')) return; // loaded twice
    const link = injectStylesheet();
    if (link) {
      // Avoid a flash of the unstyled widget; reveal on load/error/timeout.
      root.style.visibility = 'hidden';
      const reveal = () => { root.style.visibility = ''; };
      link.addEventListener('load', reveal);
      link.addEventListener('error', reveal);
      setTimeout(reveal, CSS_REVEAL_TIMEOUT_MS);
    }
    document.body.appendChild(root);
    updateStatus();
    contentChanged();
    setOpen(startOpen, false);
    connect();

    if (!window.TandemWidget) {
      window.TandemWidget = {
        version: VERSION,
        open: () => setOpen(true, true),
        close: () => setOpen(false, true),
        toggle: () => setOpen(!state.open, true),
        send: (text) => send(text),
        get state() {
          return {
            server: serverBase,
            conversation: state.conversation,
            lastSeq: state.lastSeq,
            online: state.online,
            pending: Array.from(messages.values()).filter((m) => !m.acked && !m.failed).map((m) => m.id),
          };
        },
      };
    }
  }

  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);
})();
