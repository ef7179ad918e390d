// Job page: poll the job's JSON (1 s, backing off while nothing changes) and move on when done.
// All state comes from the server, so a reload or another device shows the same thing.
import { seconds } from './api.js';

const $ = (id) => document.getElementById(id);
const root = $('job');
const jobId = root.dataset.jobId;
const api = `/api/jobs/${encodeURIComponent(jobId)}`;

// Pipeline stages → the four steps a person sees.
const STEP_OF = { decode: 'crop', crop_resize: 'crop', generator: 'generator', rdn: 'rdn', transfer: 'save', encode: 'save', store: 'save' };
const STEPS = ['crop', 'generator', 'rdn', 'save'];
const STAGE_TEXT = {
  decode: 'Reading your photo…', crop_resize: 'Cropping and resizing…', generator: 'CycleGAN is repainting the scene…',
  rdn: 'RDN is sharpening the detail…', transfer: 'Carrying the colours onto your photo…', encode: 'Saving the result…', store: 'Saving the result…',
};

let delay = 1000;
let lastSignature = '';
let timer = null;
let ticking = null;
// Elapsed time is the server's figure plus local time since it was read: no clock skew.
let elapsed = null;
let finished = false;

function cap(s) { return s ? s[0].toUpperCase() + s.slice(1) : s; }

function renderSteps(job) {
  const current = STEP_OF[job.stage] ?? null;
  const timings = job.timings_ms || {};
  const stepMs = {};
  for (const [stage, ms] of Object.entries(timings)) {
    const step = STEP_OF[stage];
    if (step) stepMs[step] = (stepMs[step] || 0) + ms;
  }
  const activeIndex = current ? STEPS.indexOf(current) : (job.status === 'succeeded' ? STEPS.length : -1);
  for (const li of root.querySelectorAll('[data-step]')) {
    const step = li.dataset.step;
    const i = STEPS.indexOf(step);
    const skipped = step === 'rdn' && job.options && job.options.enhance === false;
    li.classList.toggle('is-skipped', skipped);
    li.classList.toggle('is-active', !skipped && job.status === 'running' && i === activeIndex);
    li.classList.toggle('is-done', !skipped && (i < activeIndex || (step in stepMs && i !== activeIndex)));
    li.querySelector('.stages__ms').textContent = skipped ? 'off' : (stepMs[step] != null ? seconds(stepMs[step]) : '');
    if (!skipped && job.status === 'running' && i === activeIndex) li.setAttribute('aria-current', 'step');
    else li.removeAttribute('aria-current');
  }
}

function render(job) {
  root.dataset.status = job.status;
  root.dataset.stage = job.stage || '';
  $('job-direction').textContent = `${cap(job.source_domain)} → ${job.target_domain}`;
  const thumb = $('job-thumb');
  const src = job.urls?.thumbnail || job.urls?.original;
  if (src && thumb.getAttribute('src') !== src) { thumb.src = src; thumb.hidden = false; }

  const title = $('job-title');
  const status = $('job-status');
  if (job.status === 'queued') {
    title.textContent = 'Waiting for a free worker';
    const pos = job.queue_position;
    status.textContent = pos == null ? 'Queued.' : (pos <= 1 ? 'Queued — you are next.' : `Queued — position ${pos} in line.`);
  } else if (job.status === 'running') {
    title.textContent = 'Transforming your photo';
    status.textContent = STAGE_TEXT[job.stage] || 'Starting…';
  } else if (job.status === 'succeeded') {
    title.textContent = 'Done!';
    status.textContent = 'Opening the result…';
  } else if (job.status === 'failed') {
    title.textContent = 'This photo could not be transformed';
    status.textContent = '';
  }
  renderSteps(job);

  elapsed = job.elapsed_ms == null ? null : { ms: job.elapsed_ms, at: performance.now() };
  if (job.status === 'succeeded' || job.status === 'failed') {
    stopTicking();
    if (job.elapsed_ms != null) $('job-elapsed').textContent = seconds(job.elapsed_ms);
  } else if (!ticking) {
    ticking = setInterval(tick, 100);
  }

  if (job.status === 'failed') {
    root.classList.add('is-failed');
    $('job-error-message').textContent = cap(job.error?.message || 'something went wrong on our side.');
    $('job-retry').href = `/?direction=${encodeURIComponent(job.direction)}`;
    $('job-error').hidden = false;
  }
}

function tick() {
  if (elapsed == null) return;
  const ms = elapsed.ms + performance.now() - elapsed.at;
  $('job-elapsed').textContent = `${(ms / 1000).toFixed(1)} s`;
}

function stopTicking() { clearInterval(ticking); ticking = null; }

async function poll() {
  timer = null;
  try {
    const res = await fetch(api, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (res.status === 404) { location.reload(); return; } // the page route shows the 404
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const job = await res.json();
    $('job-conn').hidden = true;
    render(job);
    if (job.status === 'succeeded') {
      finished = true;
      root.classList.add('is-done');
      location.replace(job.urls?.result_page || `/jobs/${encodeURIComponent(jobId)}/result`);
      return;
    }
    if (job.status === 'failed') { finished = true; return; }
    const signature = `${job.status}|${job.stage}|${job.queue_position}`;
    delay = signature === lastSignature ? Math.min(delay * 1.4, 5000) : 1000;
    lastSignature = signature;
  } catch {
    $('job-conn').hidden = false;
    delay = Math.min(Math.max(delay, 1000) * 2, 10000);
  }
  timer = setTimeout(poll, delay);
}

// Coming back to the tab: look now rather than at the end of a long back-off.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && !finished && timer) {
    clearTimeout(timer);
    delay = 1000;
    poll();
  }
});

poll();
