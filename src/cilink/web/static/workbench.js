// Keyboard shortcuts: m match, n non-match, u unsure, s skip, z undo. No network requests besides the forms.
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
  const key = e.key.toLowerCase();
  if (key === "z") {
    const undo = document.getElementById("undo-form");
    if (undo) { e.preventDefault(); undo.requestSubmit(); }
    return;
  }
  if (key === "s") {
    const skip = document.getElementById("skip");
    if (skip) { e.preventDefault(); window.location.assign(skip.getAttribute("href")); }
    return;
  }
  const button = document.querySelector(`#decide-form button[data-key="${key}"]`);
  if (button) { e.preventDefault(); button.form.requestSubmit(button); }
});
