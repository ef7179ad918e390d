// Result page shell: loads the job, fills the facts and downloads, runs the pair's interaction.
import { INTERACTION_LABELS, el, getJSON, seconds } from './api.js';

const $ = (id) => document.getElementById(id);
const root = $('result');
const jobId = root.dataset.jobId;
const interaction = root.dataset.interaction;

const MODULES = { scratch: './scratch.js', 'hover-focus': './focus.js', 'scroll-reveal': './reveal.js' };
const STAGE_NAMES = { decode: 'Decode', crop_resize: 'Crop & resize', generator: 'CycleGAN', rdn: 'RDN', transfer: 'Transfer', encode: 'Encode', store: 'Store' };

function cap(s) { return s ? s[0].toUpperCase() + s.slice(1) : s; }

export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.decoding = 'async';
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });
}

function fillFacts(job) {
  const facts = $('facts');
  const rows = [
    ['Direction', `${cap(job.source_domain)} → ${job.target_domain}`],
    ['Interaction', INTERACTION_LABELS[job.interaction] || job.interaction],
    ['Output', `${job.options?.size ?? '?'} × ${job.options?.size ?? '?'} px${job.options?.enhance ? ', RDN enhanced' : ''}`],
  ];
  if (job.upload) {
    const u = job.upload;
    rows.push(['Photo', `${u.filename || 'upload'} · ${u.width} × ${u.height} ${u.format || ''}`.trim()]);
  }
  if (job.crop) {
    const c = Array.isArray(job.crop) ? job.crop : (typeof job.crop === 'string' ? job.crop.split(',') : [job.crop.x, job.crop.y, job.crop.size]);
    rows.push(['Crop', `${c[2]} px square at ${c[0]}, ${c[1]}`]);
  }
  if (job.worker) rows.push(['Worker', job.worker]);
  if (job.attempts > 1) rows.push(['Attempts', String(job.attempts)]);
  facts.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));

  const tbody = $('timings').tBodies[0];
  const timings = job.timings_ms || {};
  // The API's JSON sorts keys; show stages in pipeline order.
  const order = Object.keys(STAGE_NAMES);
  const rank = (k) => (order.indexOf(k) + 1) || 99;
  const trs = Object.entries(timings).sort((a, b) => rank(a[0]) - rank(b[0])).map(([stage, ms]) => el('tr', {}, el('td', { text: STAGE_NAMES[stage] || stage }), el('td', { text: seconds(ms) })));
  if (job.created_at && job.started_at) {
    const wait = Date.parse(job.started_at) - Date.parse(job.created_at);
    if (wait >= 0) trs.unshift(el('tr', {}, el('td', { text: 'Waited in queue' }), el('td', { text: seconds(wait) })));
  }
  if (job.elapsed_ms != null) trs.push(el('tr', { class: 'total' }, el('td', { text: 'Total' }), el('td', { text: seconds(job.elapsed_ms) })));
  tbody.replaceChildren(...trs);

  const models = (job.models || []).map((m) => el('li', {},
    el('strong', { text: m.name }), ` ${m.kind || ''}`,
    el('span', { class: `tag${m.trained ? '' : ' tag--warn'}`, text: m.trained ? 'trained' : 'untrained' }),
    el('br'), el('code', { title: m.sha256 || '', text: m.sha256 ? `sha256 ${m.sha256.slice(0, 12)}…` : '' })));
  $('models').replaceChildren(...(models.length ? models : [el('li', { class: 'muted', text: '—' })]));
  $('untrained').hidden = !(job.untrained || (job.models || []).some((m) => m.trained === false));
}

function fillDownloads(job) {
  const name = `seasons-${job.direction}-${String(job.id).slice(0, 8)}`;
  for (const [id, url, suffix] of [['dl-result', job.urls?.result, ''], ['dl-sbs', job.urls?.side_by_side, '-before-after']]) {
    const a = $(id);
    if (!url) continue;
    a.href = url;
    a.setAttribute('download', `${name}${suffix}.png`);
    a.removeAttribute('aria-disabled');
  }
}

// Before/after toggle: an overlay image above the interaction; "interact" hides it.
function wireViewSwitch(job) {
  const stage = $('stage');
  const compare = $('img-compare');
  root.addEventListener('change', (e) => {
    if (e.target.name !== 'view') return;
    const view = e.target.value;
    stage.dataset.view = view;
    if (view === 'interact') { compare.hidden = true; return; }
    compare.src = view === 'before' ? job.urls.before : job.urls.result;
    compare.alt = view === 'before' ? `The ${job.source_domain} photo` : `The ${job.target_domain} result`;
    compare.hidden = false;
  });
}

async function main() {
  let job;
  try {
    job = await getJSON(`/api/jobs/${encodeURIComponent(jobId)}`);
  } catch (err) {
    $('facts').replaceChildren(el('dt', { text: 'Error' }), el('dd', { text: err.message }));
    return;
  }
  fillFacts(job);
  fillDownloads(job);
  wireViewSwitch(job);
  const [before, result] = await Promise.all([loadImage(job.urls.before), loadImage(job.urls.result)]);
  const mod = await import(MODULES[interaction]);
  mod.setup({ root, stage: $('stage'), job, before, result });
  root.dataset.ready = 'true'; // tests and screenshots wait for this
}

main();
