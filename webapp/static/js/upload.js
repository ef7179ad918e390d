// Upload page: pick/drop a photo, frame a 1:1 square with Cropper.js, pick a direction, submit.
import Cropper from '/vendor/cropperjs/cropper.esm.js';
import { INTERACTION_LABELS, el, getJSON, megabytes, megapixels, postForm } from './api.js';

const $ = (id) => document.getElementById(id);
const form = $('upload-form');
const input = $('file');
const dropzone = $('dropzone');
const cropArea = $('crop-area');
const cropImage = $('crop-image');
const cropFrame = $('crop-frame');
const readout = $('crop-readout');
const noPreview = $('no-preview');
const fileError = $('file-error');
const submitBtn = $('submit');
const submitStatus = $('submit-status');
const submitError = $('submit-error');
const directionsBox = $('directions');

// Until /api/directions answers, the server's defaults (pipeline/intake.py).
let limits = {
  max_bytes: 25_000_000,
  max_pixels: 40_000_000,
  min_side: 16,
  formats: ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/bmp'],
};
let directionsReady = false;
const state = { file: null, cropper: null, width: 0, height: 0, crop: null };

function showError(node, message) {
  node.textContent = message;
  node.hidden = !message;
}

function formatNames(formats) {
  return formats.map((f) => f.split('/')[1].toUpperCase().replace('JPEG', 'JPEG')).join(', ');
}

function updateSubmit() {
  const direction = form.querySelector('input[name="direction"]:checked');
  const ready = Boolean(state.file && directionsReady && direction);
  submitBtn.disabled = !ready;
  if (!state.file) submitStatus.textContent = 'Choose a photo to begin.';
  else if (!direction) submitStatus.textContent = 'Pick a direction.';
  else submitStatus.textContent = `Ready: ${direction.dataset.label}.`;
}

// ---- directions -------------------------------------------------------------------------

function renderDirections(directions) {
  const wanted = new URLSearchParams(location.search).get('direction');
  const pairs = new Map();
  for (const d of directions) {
    if (!pairs.has(d.pair)) pairs.set(d.pair, []);
    pairs.get(d.pair).push(d);
  }
  directionsBox.replaceChildren();
  let firstEnabled = null;
  let preselected = null;
  for (const [pair, list] of pairs) {
    const [a, b] = [list[0].source, list[0].target];
    const box = el('div', { class: `pair pair--${pair}`, role: 'group', 'aria-labelledby': `pair-${pair}` },
      el('div', { class: 'pair__head' },
        el('span', { id: `pair-${pair}`, class: 'pair__name' },
          el('span', { class: `chip chip--${a}`, 'aria-hidden': 'true' }),
          el('span', { class: `chip chip--${b}`, 'aria-hidden': 'true' }),
          ` ${cap(a)} ↔ ${cap(b)}`),
        el('span', { class: 'pair__interaction', text: INTERACTION_LABELS[list[0].interaction] || list[0].interaction })));
    for (const d of list) {
      const disabled = !d.installed;
      const reasonId = `reason-${d.name}`;
      const radio = el('input', {
        type: 'radio', name: 'direction', value: d.name, id: `dir-${d.name}`, disabled,
        'data-label': `${cap(d.source)} → ${d.target}`, 'aria-describedby': disabled ? reasonId : null,
      });
      const label = el('label', { class: `direction${disabled ? ' is-disabled' : ''}`, for: `dir-${d.name}` }, radio,
        el('span', { class: 'direction__text' },
          el('span', { text: `${cap(d.source)} → ${d.target}` }),
          disabled ? el('span', { id: reasonId, class: 'direction__reason', text: d.reason || 'not installed' })
            : (d.trained === false ? el('span', { class: 'direction__reason', text: 'untrained model' }) : null)));
      box.append(label);
      if (!disabled && !firstEnabled) firstEnabled = radio;
      if (!disabled && d.name === wanted) preselected = radio;
    }
    directionsBox.append(box);
  }
  const pick = preselected || firstEnabled;
  if (pick) pick.checked = true;
  else directionsBox.append(el('p', { class: 'form-error', text: 'No models are installed yet, so nothing can be transformed.' }));
  directionsBox.setAttribute('aria-busy', 'false');
  directionsReady = true;
  updateSubmit();
}

function cap(s) { return s ? s[0].toUpperCase() + s.slice(1) : s; }

async function loadDirections() {
  try {
    const data = await getJSON('/api/directions');
    if (data.limits) limits = { ...limits, ...data.limits };
    $('limits').textContent = `${formatNames(limits.formats)} · up to ${megabytes(limits.max_bytes)} and ${megapixels(limits.max_pixels)}`;
    input.accept = limits.formats.join(',');
    renderDirections(data.directions);
  } catch (err) {
    directionsBox.replaceChildren(el('p', { class: 'form-error', text: `Could not load the directions: ${err.message}.` }));
  }
}

// ---- file intake ------------------------------------------------------------------------

// Mirrors the server's checks (byte size, type, pixel count, min side); the server decides.
function checkFileBasics(file) {
  if (!file.size) return 'the file is empty';
  if (file.size > limits.max_bytes) return `the file is ${megabytes(file.size)}, the limit is ${megabytes(limits.max_bytes)}`;
  if (file.type && !limits.formats.includes(file.type)) {
    return file.type.startsWith('image/')
      ? `${file.type.split('/')[1].toUpperCase()} files are not supported; upload a photo (${formatNames(limits.formats)})`
      : 'not an image';
  }
  return null;
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function decodeSize(url) {
  const probe = new Image();
  probe.src = url;
  await probe.decode();
  // Chromium, Firefox and Safari apply EXIF orientation here: these are the rotated sides.
  return { width: probe.naturalWidth, height: probe.naturalHeight };
}

function reset() {
  state.cropper?.destroy();
  Object.assign(state, { file: null, cropper: null, width: 0, height: 0, crop: null });
  cropArea.hidden = true;
  noPreview.hidden = true;
  dropzone.hidden = false;
  input.value = '';
  updateSubmit();
}

async function handleFile(file) {
  if (!file) return;
  showError(fileError, '');
  showError(submitError, '');
  const problem = checkFileBasics(file);
  if (problem) { reset(); showError(fileError, problem); return; }
  const url = await readAsDataURL(file);
  let size;
  try {
    size = await decodeSize(url);
  } catch {
    // TIFF is a photo the server accepts but most browsers cannot draw: send it uncropped.
    if (file.type === 'image/tiff' && limits.formats.includes('image/tiff')) {
      reset();
      state.file = file;
      dropzone.hidden = true;
      $('no-preview-name').textContent = file.name;
      noPreview.hidden = false;
      updateSubmit();
      return;
    }
    reset();
    showError(fileError, 'not an image');
    return;
  }
  const pixels = size.width * size.height;
  if (pixels > limits.max_pixels) {
    reset();
    showError(fileError, `image is ${megapixels(pixels)}, the limit is ${megapixels(limits.max_pixels)}`);
    return;
  }
  if (Math.min(size.width, size.height) < limits.min_side) {
    reset();
    showError(fileError, `image is ${size.width}×${size.height} px; both sides must be at least ${limits.min_side} px`);
    return;
  }
  reset();
  Object.assign(state, { file, width: size.width, height: size.height });
  dropzone.hidden = true;
  cropArea.hidden = false;
  startCropper(url);
  updateSubmit();
}

// ---- cropping ---------------------------------------------------------------------------

function startCropper(url) {
  cropImage.src = url;
  state.cropper = new Cropper(cropImage, {
    aspectRatio: 1,
    viewMode: 1, // the square stays on the photo
    autoCropArea: 1, // the largest centred square
    dragMode: 'move',
    checkOrientation: true, // reads EXIF orientation from the JPEG data URL
    rotatable: true, // needed for checkOrientation; no rotate UI
    background: false,
    toggleDragModeOnDblclick: false,
    minCropBoxWidth: 40,
    crop: () => updateCrop(),
    ready: () => updateCrop(),
  });
}

// Natural pixel coordinates of the EXIF-rotated image, clamped onto it, as "x,y,size".
function updateCrop() {
  const c = state.cropper;
  if (!c) return;
  const d = c.getData(true);
  let size = Math.min(d.width, d.height, state.width, state.height);
  const x = Math.max(0, Math.min(d.x, state.width - size));
  const y = Math.max(0, Math.min(d.y, state.height - size));
  size = Math.max(1, size);
  state.crop = { x, y, size };
  readout.textContent = `${size} × ${size} px at ${x}, ${y} of ${state.width} × ${state.height}`;
  cropFrame.dataset.crop = `${x},${y},${size}`;
}

function nudgeCrop(dx, dy) {
  const c = state.cropper;
  const box = c.getCropBoxData();
  c.setCropBoxData({ left: box.left + dx, top: box.top + dy });
}

cropFrame.addEventListener('keydown', (e) => {
  if (!state.cropper) return;
  const step = e.shiftKey ? 40 : 8;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (moves[e.key]) { nudgeCrop(...moves[e.key]); e.preventDefault(); }
  else if (e.key === '+' || e.key === '=') { state.cropper.zoom(0.1); e.preventDefault(); }
  else if (e.key === '-') { state.cropper.zoom(-0.1); e.preventDefault(); }
});

document.addEventListener('click', (e) => {
  const action = e.target.closest('[data-crop]')?.dataset.crop;
  if (!action) return;
  if (action === 'change') { input.click(); return; }
  const c = state.cropper;
  if (!c) return;
  if (action === 'zoom-in') c.zoom(0.1);
  if (action === 'zoom-out') c.zoom(-0.1);
  if (action === 'reset') c.reset();
});

// ---- pick & drop ------------------------------------------------------------------------

input.addEventListener('change', () => handleFile(input.files[0]));

// Drops anywhere on the page count (and never navigate away to the file).
let dragDepth = 0;
document.addEventListener('dragenter', (e) => { e.preventDefault(); dragDepth += 1; dropzone.classList.add('is-over'); });
document.addEventListener('dragleave', () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) dropzone.classList.remove('is-over'); });
document.addEventListener('dragover', (e) => e.preventDefault());
document.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  dropzone.classList.remove('is-over');
  const file = e.dataTransfer?.files?.[0];
  if (file) handleFile(file);
});

form.addEventListener('change', (e) => { if (e.target.name === 'direction') updateSubmit(); });

// ---- submit -----------------------------------------------------------------------------

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  if (submitBtn.disabled) return;
  const direction = form.querySelector('input[name="direction"]:checked').value;
  const data = new FormData();
  data.append('file', state.file, state.file.name || 'photo');
  data.append('direction', direction);
  if (state.crop) data.append('crop', `${state.crop.x},${state.crop.y},${state.crop.size}`);
  data.append('enhance', $('enhance').checked ? 'true' : 'false');
  data.append('size', form.querySelector('input[name="size"]:checked').value);

  const bar = $('upload-progress-bar');
  submitBtn.disabled = true;
  showError(submitError, '');
  $('upload-progress').hidden = false;
  submitStatus.textContent = 'Uploading…';
  try {
    const { body } = await postForm('/api/jobs', data, (f) => {
      bar.style.width = `${Math.round(f * 100)}%`;
    });
    submitStatus.textContent = 'Uploaded — starting…';
    window.location.assign(body?.urls?.page || `/jobs/${encodeURIComponent(body.id)}`);
  } catch (err) {
    $('upload-progress').hidden = true;
    bar.style.width = '0';
    showError(submitError, cap(err.message));
    updateSubmit();
  }
});

loadDirections();
updateSubmit();
