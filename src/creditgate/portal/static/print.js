/* The receipt's Print button: the only script a receipt page needs besides htmx. */
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
