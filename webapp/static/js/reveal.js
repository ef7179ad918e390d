// Summer ↔ winter: scrolling through a tall track reveals the result over the original,
// top to bottom like falling snow, and scrolling back up takes it away again.

export function setup({ stage, before, result }) {
  const track = document.getElementById('reveal-track');
  const top = document.getElementById('img-result');
  const edge = document.getElementById('reveal-edge');
  const slider = document.getElementById('reveal');
  const out = document.getElementById('reveal-value');
  document.getElementById('img-before').src = before.src;
  top.src = result.src;
  let queued = false;

  const sticky = stage.parentElement;
  const stickyOffset = () => parseFloat(getComputedStyle(sticky).top) || 0;
  // 0 when the track's top reaches the sticky position, 1 when its end reaches the bottom of
  // the window (always reachable: the track is the page's last tall thing).
  const travel = () => track.getBoundingClientRect().height - (window.innerHeight - stickyOffset());

  function progress() {
    const t = travel();
    if (t <= 0) return 1;
    return Math.min(1, Math.max(0, (stickyOffset() - track.getBoundingClientRect().top) / t));
  }

  function apply(p) {
    const hidden = (1 - p) * 100;
    top.style.clipPath = `inset(0 0 ${hidden.toFixed(2)}% 0)`;
    edge.style.transform = `translateY(${(p * stage.clientHeight).toFixed(1)}px)`;
    edge.hidden = p <= 0 || p >= 1;
    stage.dataset.revealed = p.toFixed(3);
    slider.value = String(Math.round(p * 100));
    out.textContent = `${Math.round(p * 100)}%`;
  }

  const update = () => { queued = false; apply(progress()); };
  const schedule = () => { if (!queued) { queued = true; requestAnimationFrame(update); } };
  window.addEventListener('scroll', schedule, { passive: true });
  window.addEventListener('resize', schedule);

  // The slider is the keyboard and no-scroll way in: it scrolls the page to match.
  slider.addEventListener('input', () => {
    const p = Number(slider.value) / 100;
    const trackTop = track.getBoundingClientRect().top + window.scrollY;
    window.scrollTo({ top: trackTop - stickyOffset() + p * travel(), behavior: 'instant' });
    apply(p);
  });

  update();
}
