// Clicking "Open document" asks the server for the document; a citation link's #ev-… hash scrolls to its card.
element.addEventListener('click', (event) => {
  const button = event.target.closest('.qa-open');
  if (button) trigger('click', {card: Number(button.dataset.card)});
});
const focusCard = () => {
  const id = decodeURIComponent(location.hash.slice(1));
  if (!id.startsWith('ev-')) return;
  const card = element.querySelector('[id="' + id.replace(/[^\w-]/g, '') + '"]');
  if (!card) return;
  card.scrollIntoView({block: 'nearest'});
  card.classList.add('qa-flash');
  setTimeout(() => card.classList.remove('qa-flash'), 1500);
};
watch('value', focusCard);
window.addEventListener('hashchange', focusCard);
