// Spring ↔ autumn: the result is blurred and comes into focus around the pointer.
// A blurred copy is drawn once; each frame paints it, then a soft-edged sharp spot on top.

export function setup({ stage, result }) {
  const canvas = document.getElementById('focus');
  const radiusInput = document.getElementById('radius');
  const radiusOut = document.getElementById('radius-value');
  const allFocus = document.getElementById('all-focus');
  const w = result.naturalWidth;
  const h = result.naturalHeight;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });

  const blurred = makeBlurred(result, w, h);
  const spot = document.createElement('canvas');
  spot.width = w;
  spot.height = h;
  const spotCtx = spot.getContext('2d');
  let point = null;
  let queued = false;

  const scale = () => w / canvas.getBoundingClientRect().width;
  const radius = () => Number(radiusInput.value) * scale();

  function draw() {
    queued = false;
    if (allFocus.checked) {
      ctx.drawImage(result, 0, 0, w, h);
      stage.dataset.focus = 'all';
      return;
    }
    ctx.drawImage(blurred, 0, 0);
    if (point) {
      const r = radius();
      spotCtx.globalCompositeOperation = 'source-over';
      spotCtx.clearRect(0, 0, w, h);
      spotCtx.drawImage(result, 0, 0, w, h);
      // Keep only a disc around the pointer, feathered at its edge.
      const g = spotCtx.createRadialGradient(point.x, point.y, r * 0.55, point.x, point.y, r);
      g.addColorStop(0, 'rgba(0,0,0,1)');
      g.addColorStop(1, 'rgba(0,0,0,0)');
      spotCtx.globalCompositeOperation = 'destination-in';
      spotCtx.fillStyle = g;
      spotCtx.fillRect(0, 0, w, h);
      ctx.drawImage(spot, 0, 0);
      stage.dataset.focus = `${Math.round(point.x)},${Math.round(point.y)}`;
    } else {
      stage.dataset.focus = '';
    }
  }
  const schedule = () => { if (!queued) { queued = true; requestAnimationFrame(draw); } };

  function toCanvas(e) {
    const r = canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * w, y: ((e.clientY - r.top) / r.height) * h };
  }

  canvas.addEventListener('pointermove', (e) => { point = toCanvas(e); schedule(); });
  canvas.addEventListener('pointerdown', (e) => { point = toCanvas(e); schedule(); });
  // A mouse leaving takes the focus with it; a finger lifting leaves it where it was.
  canvas.addEventListener('pointerleave', (e) => { if (e.pointerType === 'mouse') { point = null; schedule(); } });

  canvas.addEventListener('focus', () => { if (!point) { point = { x: w / 2, y: h / 2 }; schedule(); } });
  canvas.addEventListener('keydown', (e) => {
    const step = (e.shiftKey ? 0.12 : 0.04) * w;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (!moves[e.key]) return;
    const p = point || { x: w / 2, y: h / 2 };
    point = { x: Math.min(w, Math.max(0, p.x + moves[e.key][0])), y: Math.min(h, Math.max(0, p.y + moves[e.key][1])) };
    schedule();
    e.preventDefault();
  });

  radiusInput.addEventListener('input', () => { radiusOut.textContent = `${radiusInput.value} px`; schedule(); });
  allFocus.addEventListener('change', schedule);
  draw();
}

// Canvas filter where supported (Chromium, Firefox); otherwise a downscale-upscale blur.
function makeBlurred(img, w, h) {
  const out = document.createElement('canvas');
  out.width = w;
  out.height = h;
  const c = out.getContext('2d');
  const px = Math.max(4, Math.round(w / 40));
  if ('filter' in c) {
    c.filter = `blur(${px}px)`;
    // Draw a little larger so the blur does not darken the edges.
    c.drawImage(img, -2 * px, -2 * px, w + 4 * px, h + 4 * px);
    c.filter = 'none';
  } else {
    const small = document.createElement('canvas');
    small.width = Math.max(1, Math.round(w / px));
    small.height = Math.max(1, Math.round(h / px));
    small.getContext('2d').drawImage(img, 0, 0, small.width, small.height);
    c.imageSmoothingQuality = 'high';
    c.drawImage(small, 0, 0, w, h);
  }
  return out;
}
