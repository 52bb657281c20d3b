// Injected into the page before its scripts (Playwright addInitScript): records every server-sent event the
// page's EventSources receive (window.__sse) and every state, stage and preview scale the queue cards show
// (window.__cards), so the test sees what happened however fast it went.
window.__sse = [];
window.__cards = [];
const Original = window.EventSource;
const types = ["queued", "started", "progress", "preview", "cancelling", "done", "failed", "cancelled"];
window.EventSource = class extends Original {
  constructor(url, init) {
    super(url, init);
    for (const type of types) {
      this.addEventListener(type, (e) => window.__sse.push({ url: String(url), event: JSON.parse(e.data) }));
    }
  }
};
new MutationObserver((records) => {
  for (const r of records) {
    const el = r.target;
    if (r.type === "attributes" && el.classList?.contains("job")) {
      window.__cards.push({
        id: el.dataset.id,
        state: el.dataset.state,
        stage: el.dataset.stage,
        scale: el.dataset.previewScale,
      });
    }
  }
}).observe(document, {
  subtree: true,
  attributes: true,
  attributeFilter: ["data-state", "data-stage", "data-preview-scale"],
});
