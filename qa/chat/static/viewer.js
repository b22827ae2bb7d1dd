// The viewer scrolls its text box so the highlight sits in the upper third, and brings itself into view.
const show = () => {
  const focus = element.querySelector('#doc-focus');
  const box = element.querySelector('.qa-doc-text');
  if (!focus || !box) return;
  box.scrollTop = Math.max(0, focus.offsetTop - box.clientHeight / 3);
  element.scrollIntoView({block: 'nearest'});
};
watch('value', show);
element.addEventListener('click', (event) => {
  if (event.target.closest('.qa-close')) props.value = '';
  const pageButton = event.target.closest('.qa-page-open');
  if (pageButton) { pageButton.disabled = true; trigger('click', {card: Number(pageButton.dataset.card)}); }
});
// The page as printed: scrolled so the quote's first line sits in view, its left edge too when the
// page is zoomed (always on a narrow screen; a click on the page toggles it elsewhere).
const placePage = () => {
  const scroller = element.querySelector('.qa-page-scroll');
  const boxes = [...element.querySelectorAll('.qa-box')];
  if (!scroller || !boxes.length) return;
  scroller.scrollTop = Math.max(0, boxes[0].offsetTop - scroller.clientHeight / 3);
  scroller.scrollLeft = Math.max(0, Math.min(...boxes.map((box) => box.offsetLeft)) - 16);
};
const showPage = () => {
  const scroller = element.querySelector('.qa-page-scroll');
  if (!scroller) return;
  const image = scroller.querySelector('img');
  if (image && !image.complete) image.addEventListener('load', placePage, {once: true}); else placePage();
  scroller.scrollIntoView({block: 'nearest'});
};
element.addEventListener('click', (event) => {
  const canvas = event.target.closest('.qa-page-canvas');
  if (canvas) { canvas.classList.toggle('qa-zoomed'); placePage(); }
});
watch('value', showPage);
