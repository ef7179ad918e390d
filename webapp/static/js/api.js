// Talking to the JSON API: CSRF header, readable errors, number formatting shared by pages.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? '';
}

const FALLBACK = {
  404: 'not found',
  413: 'the file is too large',
  429: 'too many requests — wait a moment and try again',
  503: 'the service is busy or restarting — try again in a moment',
};

// The API's errors are {"error": {"code", "message"}}; the message is written for people.
export function errorFrom(status, body) {
  const err = body && typeof body === 'object' ? body.error : null;
  const message = err?.message || FALLBACK[status] || `the server answered ${status}`;
  return new ApiError(status, err?.code || `http_${status}`, message);
}

export async function getJSON(url, { signal } = {}) {
  const res = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin', signal });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw errorFrom(res.status, body);
  return body;
}

// XHR rather than fetch: it reports upload progress, which matters for a 25 MB photo.
export function postForm(url, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('X-CSRFToken', csrfToken());
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve({ body: xhr.response, location: xhr.getResponseHeader('Location') });
      else reject(errorFrom(xhr.status, xhr.response));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'the upload did not reach the server — check the connection and try again'));
    xhr.send(formData);
  });
}

// Same wording as pipeline/intake.py, so client and server say the same thing.
export function megabytes(n) {
  return `${(n / 1e6).toFixed(1)} MB`.replace('.0 MB', ' MB');
}

export function megapixels(n) {
  const mp = n / 1e6;
  return mp >= 10 ? `${Math.round(mp)} MP` : `${mp.toFixed(1)} MP`.replace('.0 MP', ' MP');
}

export function seconds(ms) {
  if (ms == null) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const ago = (Date.now() - d.getTime()) / 1000;
  if (ago < 60) return 'just now';
  if (ago < 3600) return `${Math.floor(ago / 60)} min ago`;
  if (ago < 86400) return `${Math.floor(ago / 3600)} h ago`;
  return d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

export const INTERACTION_LABELS = {
  scratch: 'Scratch to reveal',
  'hover-focus': 'Hover to focus',
  'scroll-reveal': 'Scroll to reveal',
};

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}
