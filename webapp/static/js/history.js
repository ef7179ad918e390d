// History: a page of recent jobs from /api/jobs, filters and page number kept in the URL.
import { el, getJSON, seconds, when } from './api.js';

const $ = (id) => document.getElementById(id);
const tbody = $('jobs').tBodies[0];
const statusSel = $('f-status');
const dirSel = $('f-direction');
let perPage = 20;
let page = 1;
let pages = 1;

function cap(s) { return s ? s[0].toUpperCase() + s.slice(1) : s; }

function readQuery() {
  const q = new URLSearchParams(location.search);
  page = Math.max(1, parseInt(q.get('page') || '1', 10) || 1);
  perPage = Math.min(100, Math.max(1, parseInt(q.get('per_page') || '20', 10) || 20));
  statusSel.value = q.get('status') || '';
  dirSel.value = q.get('direction') || '';
}

function writeQuery(push) {
  const q = new URLSearchParams();
  if (page > 1) q.set('page', page);
  if (perPage !== 20) q.set('per_page', perPage);
  if (statusSel.value) q.set('status', statusSel.value);
  if (dirSel.value) q.set('direction', dirSel.value);
  const url = `${location.pathname}${q.toString() ? `?${q}` : ''}`;
  history[push ? 'pushState' : 'replaceState'](null, '', url);
}

function row(job) {
  const href = job.status === 'succeeded' ? (job.urls?.result_page || `/jobs/${job.id}/result`) : (job.urls?.page || `/jobs/${job.id}`);
  const label = `${cap(job.source_domain)} → ${job.target_domain}`;
  const thumb = job.urls?.thumbnail
    ? el('img', { class: 'thumb', src: job.urls.thumbnail, alt: '', loading: 'lazy', width: 52, height: 52 })
    : el('span', { class: 'thumb', 'aria-hidden': 'true' });
  return el('tr', { 'data-job-id': job.id },
    el('td', {}, el('a', { href, tabindex: '-1', 'aria-hidden': 'true' }, thumb)),
    el('td', {}, el('a', { href, text: label })),
    el('td', {}, el('span', { class: `status status--${job.status}`, text: job.status === 'queued' && job.queue_position ? `queued #${job.queue_position}` : job.status })),
    el('td', { class: 'num', text: job.elapsed_ms != null ? seconds(job.elapsed_ms) : '—' }),
    el('td', { class: 'col-when' }, el('time', { datetime: job.created_at || '', text: when(job.created_at) })));
}

async function load() {
  const q = new URLSearchParams({ page, per_page: perPage });
  if (statusSel.value) q.set('status', statusSel.value);
  if (dirSel.value) q.set('direction', dirSel.value);
  $('jobs').setAttribute('aria-busy', 'true');
  try {
    const data = await getJSON(`/api/jobs?${q}`);
    pages = Math.max(1, data.pages || 1);
    if (data.jobs.length) tbody.replaceChildren(...data.jobs.map(row));
    else {
      const filtered = statusSel.value || dirSel.value;
      tbody.replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'empty muted' },
        filtered ? 'No jobs match these filters.' : 'No jobs yet. ', filtered ? null : el('a', { href: '/', text: 'Transform a photo' }))));
    }
    $('page-info').textContent = `Page ${data.page || page} of ${pages} · ${data.total ?? data.jobs.length} jobs`;
    $('prev').disabled = page <= 1;
    $('next').disabled = page >= pages;
  } catch (err) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'form-error', text: `Could not load the history: ${err.message}.` })));
  } finally {
    $('jobs').setAttribute('aria-busy', 'false');
  }
}

$('filters').addEventListener('change', () => { page = 1; writeQuery(true); load(); });
$('filters').addEventListener('submit', (e) => e.preventDefault());
$('prev').addEventListener('click', () => { page = Math.max(1, page - 1); writeQuery(true); load(); });
$('next').addEventListener('click', () => { page = Math.min(pages, page + 1); writeQuery(true); load(); });
window.addEventListener('popstate', () => { readQuery(); load(); });

readQuery();
load();
