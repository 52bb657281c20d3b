import type {
  ErrorResponse,
  GenerateBody,
  GenerateSettings,
  ImageInfo,
  JobEvent,
  ServerConfig,
  SubmitResponse,
} from "../shared/protocol";

/** The page: builds the form from `/api/config`, submits jobs, follows each job's event stream, fills the gallery. */

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const form = $<HTMLFormElement>("generate-form");
const promptInput = $<HTMLInputElement>("prompt");
const runButton = $<HTMLButtonElement>("run");
const promptCount = $("prompt-count");
const seedInput = $<HTMLInputElement>("seed");
const randomizeInput = $<HTMLInputElement>("randomize");
const cfgInput = $<HTMLInputElement>("cfg");
const cfgValue = $<HTMLOutputElement>("cfg-value");
const smoothInput = $<HTMLInputElement>("smooth");
const numImagesInput = $<HTMLSelectElement>("num-images");
const formError = $("form-error");
const modelStatus = $("model-status");
const jobsList = $<HTMLOListElement>("jobs");
const jobsEmpty = $("jobs-empty");
const gallery = $("gallery");
const galleryEmpty = $("gallery-empty");

let config: ServerConfig | undefined;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { dataset?: Record<string, string> } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(node, rest);
  if (dataset) Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}

function showError(message: string | null): void {
  formError.hidden = message === null;
  formError.textContent = message ?? "";
}

function updatePromptCount(): void {
  if (!config) return;
  const n = [...promptInput.value.trim()].length;
  promptCount.textContent = n > 0 ? `${n} / ${config.maxPromptChars} characters` : "";
  promptCount.classList.toggle("over", n > config.maxPromptChars);
}

function setupForm(c: ServerConfig): void {
  promptInput.maxLength = c.maxPromptChars;
  seedInput.max = String(c.maxSeed);
  seedInput.value = String(c.defaults.seed);
  randomizeInput.checked = c.defaults.randomizeSeed;
  seedInput.disabled = randomizeInput.checked;
  cfgInput.min = String(c.cfg.min);
  cfgInput.max = String(c.cfg.max);
  cfgInput.step = String(c.cfg.step);
  cfgInput.value = String(c.cfg.default);
  cfgValue.textContent = cfgInput.value;
  smoothInput.checked = c.defaults.moreSmooth;
  numImagesInput.replaceChildren(
    ...Array.from({ length: c.maxImages }, (_, i) =>
      el("option", { value: String(i + 1), textContent: String(i + 1) }),
    ),
  );
  numImagesInput.value = String(c.defaults.numImages);
  $("safety-note").hidden = !c.safetyCheck;
  $("examples").replaceChildren(
    ...c.examples.map((text) => {
      const button = el("button", {
        type: "button",
        className: "example",
        textContent: text,
        title: "Use this prompt",
      });
      button.addEventListener("click", () => {
        promptInput.value = text;
        updatePromptCount();
        promptInput.focus();
      });
      return button;
    }),
  );
}

function showModelStatus(c: ServerConfig): void {
  if (c.loadError) {
    modelStatus.textContent = `The model failed to load: ${c.loadError}`;
    modelStatus.className = "status error";
  } else if (!c.ready) {
    modelStatus.textContent = `Loading ${c.model}… (jobs submitted now wait in the queue)`;
    modelStatus.className = "status loading";
  } else {
    modelStatus.textContent = `Model ${c.model}${c.imageSize ? ` · ${c.imageSize}×${c.imageSize}` : ""} · ready`;
    modelStatus.className = "status ready";
  }
}

async function loadConfig(): Promise<void> {
  try {
    const res = await fetch("/api/config");
    const c = (await res.json()) as ServerConfig;
    if (!config) setupForm(c);
    config = c;
    showModelStatus(c);
    if (!c.ready && !c.loadError) setTimeout(loadConfig, 1000);
  } catch {
    modelStatus.textContent = "Cannot reach the server; retrying…";
    modelStatus.className = "status error";
    setTimeout(loadConfig, 2000);
  }
}

/** One job's card in the queue list and its event stream. */
class JobView {
  readonly item: HTMLLIElement;
  private readonly stateText = el("span", { className: "state" });
  private readonly stageText = el("span", { className: "stage" });
  private readonly bar = el("progress", { className: "bar", max: 1, value: 0 });
  private readonly preview = el("img", { className: "preview", alt: "preview of the image so far", hidden: true });
  private readonly cancelButton = el("button", { type: "button", className: "cancel", textContent: "Cancel" });
  private readonly source: EventSource;

  constructor(
    readonly id: string,
    readonly settings: GenerateSettings,
  ) {
    const summary = el(
      "div",
      { className: "summary" },
      el("span", { className: "prompt", textContent: settings.prompt }),
      el("span", { className: "meta", textContent: settingsLine(settings) }),
    );
    this.item = el(
      "li",
      { className: "job", dataset: { id, state: "queued" } },
      this.preview,
      el(
        "div",
        { className: "body" },
        summary,
        el("div", { className: "line" }, this.stateText, this.stageText),
        this.bar,
      ),
      this.cancelButton,
    );
    this.cancelButton.addEventListener("click", () => this.cancel());
    jobsList.append(this.item);
    updateJobsEmpty();

    this.source = new EventSource(`/api/jobs/${encodeURIComponent(id)}/events`);
    const types: JobEvent["type"][] = [
      "queued",
      "started",
      "progress",
      "preview",
      "cancelling",
      "done",
      "failed",
      "cancelled",
    ];
    for (const type of types) {
      this.source.addEventListener(type, (e) => this.onEvent(JSON.parse((e as MessageEvent<string>).data) as JobEvent));
    }
    this.source.addEventListener("error", () => {
      if (this.source.readyState === EventSource.CLOSED && this.item.isConnected) {
        this.close();
        this.setState("failed", "Lost the connection to the server");
        this.addDismiss();
      }
    });
  }

  private setState(state: string, text: string): void {
    this.item.dataset.state = state;
    this.stateText.textContent = text;
  }

  private onEvent(event: JobEvent): void {
    switch (event.type) {
      case "queued":
        this.setState("queued", event.position > 0 ? `Waiting · position ${event.position} in the queue` : "Waiting");
        break;
      case "started":
        this.setState("running", "Running");
        break;
      case "progress": {
        const step = event.step !== undefined && event.steps ? ` ${event.step}/${event.steps}` : "";
        this.stageText.textContent = `${stageName(event.stage)}${step}${event.message ? ` — ${event.message}` : ""}`;
        this.item.dataset.stage = event.stage;
        if (event.stage === "transformer" && event.step !== undefined && event.steps) {
          this.bar.value = event.step / event.steps;
        }
        break;
      }
      case "preview":
        this.preview.src = event.dataUrl;
        this.preview.hidden = false;
        this.preview.title = `after scale ${event.scale} of ${event.scales}`;
        this.item.dataset.previewScale = String(event.scale);
        break;
      case "cancelling":
        this.setState("cancelling", "Cancelling…");
        this.cancelButton.disabled = true;
        break;
      case "done":
        this.close();
        this.remove();
        addToGallery(event.images, event.settings, event.promptReplaced, event.elapsedMs);
        break;
      case "failed":
        this.close();
        this.setState("failed", `Failed: ${event.message}`);
        this.addDismiss();
        break;
      case "cancelled":
        this.close();
        this.setState("cancelled", "Cancelled");
        setTimeout(() => this.remove(), 1500);
        break;
    }
  }

  private close(): void {
    this.source.close();
    this.cancelButton.hidden = true;
  }

  private addDismiss(): void {
    const dismiss = el("button", { type: "button", className: "dismiss", textContent: "Dismiss" });
    dismiss.addEventListener("click", () => this.remove());
    this.item.append(dismiss);
  }

  private remove(): void {
    this.item.remove();
    updateJobsEmpty();
  }

  private async cancel(): Promise<void> {
    this.cancelButton.disabled = true;
    const res = await fetch(`/api/jobs/${encodeURIComponent(this.id)}`, { method: "DELETE" }).catch(() => null);
    if (!res?.ok) this.cancelButton.disabled = false;
  }
}

function stageName(stage: string): string {
  const names: Record<string, string> = {
    loading: "Loading the model",
    filter: "Checking the prompt",
    text: "Encoding the prompt",
    transformer: "Scale",
    diffusion: "Residual diffusion",
    decode: "Decoding",
  };
  return names[stage] ?? stage;
}

function settingsLine(s: GenerateSettings): string {
  return `seed ${s.seed} · guidance ${s.cfg} · ${s.moreSmooth ? "more smooth" : "plain"} · ${s.numImages} image${
    s.numImages > 1 ? "s" : ""
  }`;
}

function updateJobsEmpty(): void {
  jobsEmpty.hidden = jobsList.children.length > 0;
}

function addToGallery(images: ImageInfo[], settings: GenerateSettings, replaced: boolean, elapsedMs: number): void {
  const cards = images.map((image, i) => {
    const img = el("img", {
      src: image.url,
      alt: settings.prompt,
      width: image.width,
      height: image.height,
      loading: "lazy",
      // Tiny test models make 32-pixel images: keep their pixels crisp when scaled up.
      className: image.width < 256 ? "small" : "",
    });
    const download = el("a", {
      className: "download",
      href: `${image.url}?download=1`,
      download: image.fileName,
      textContent: "Download",
    });
    const reuse = el("button", { type: "button", className: "reuse", textContent: "Reuse settings" });
    reuse.addEventListener("click", () => reuseSettings(settings));
    return el(
      "figure",
      { className: "card", dataset: { seed: String(settings.seed) } },
      el("a", { href: image.url, target: "_blank", className: "full" }, img),
      el(
        "figcaption",
        {},
        el("p", { className: "prompt", textContent: settings.prompt }),
        el("p", {
          className: "meta",
          textContent: `${settingsLine(settings)} · #${i + 1} · ${image.width}×${image.height} · ${(elapsedMs / 1000).toFixed(1)} s`,
        }),
        ...(replaced
          ? [el("p", { className: "note", textContent: "The prompt was replaced by the safety check." })]
          : []),
        el("div", { className: "actions" }, download, reuse),
      ),
    );
  });
  gallery.prepend(...cards);
  galleryEmpty.hidden = true;
}

function reuseSettings(s: GenerateSettings): void {
  promptInput.value = s.prompt;
  seedInput.value = String(s.seed);
  randomizeInput.checked = false;
  seedInput.disabled = false;
  cfgInput.value = String(s.cfg);
  cfgValue.textContent = cfgInput.value;
  smoothInput.checked = s.moreSmooth;
  numImagesInput.value = String(s.numImages);
  updatePromptCount();
  promptInput.focus();
}

async function submit(): Promise<void> {
  showError(null);
  const body: GenerateBody = {
    prompt: promptInput.value,
    randomizeSeed: randomizeInput.checked,
    cfg: Number(cfgInput.value),
    moreSmooth: smoothInput.checked,
    numImages: Number(numImagesInput.value),
  };
  if (!randomizeInput.checked) {
    if (!/^\d+$/.test(seedInput.value.trim())) {
      showError("The seed must be a whole number.");
      return;
    }
    body.seed = Number(seedInput.value);
  }
  runButton.disabled = true;
  try {
    const res = await fetch("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as SubmitResponse | ErrorResponse;
    if (!res.ok || "error" in answer) {
      showError("error" in answer ? answer.error : `The server answered ${res.status}.`);
      return;
    }
    // Like the release demo, show the seed that was used so the image can be made again.
    seedInput.value = String(answer.settings.seed);
    new JobView(answer.id, answer.settings);
  } catch {
    showError("Cannot reach the server.");
  } finally {
    runButton.disabled = false;
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  void submit();
});
randomizeInput.addEventListener("change", () => {
  seedInput.disabled = randomizeInput.checked;
});
cfgInput.addEventListener("input", () => {
  cfgValue.textContent = cfgInput.value;
});
promptInput.addEventListener("input", updatePromptCount);

void loadConfig();
