// Questions of SSH servers (a one-time code, a password, a key's passphrase) on the live page:
// each open prompt is a small form; the answer is posted once and never kept in the page.
import { getJson, postJson } from "./api.js";
import { h, mount } from "./dom.js";

export class PromptsPanel {
  constructor(el) {
    this.el = el;
    // id -> its form, built once so that typing is not lost when other prompts come and go
    this.forms = new Map();
  }

  async load() {
    try {
      const r = await getJson("/api/prompts");
      for (const p of r.prompts) this.open(p);
    } catch {
      // the panel stays empty: the prompt events still arrive
    }
  }

  onBus(e) {
    if (e.topic === "ssh.prompt") this.open(e.data);
    else if (e.topic === "ssh.prompt.closed") this.close(String(e.data.id));
  }

  open(p) {
    if (this.forms.has(p.id)) return;
    this.forms.set(p.id, this.form(p));
    this.render();
  }

  close(id) {
    if (this.forms.delete(id)) this.render();
  }

  render() {
    if (this.forms.size === 0) return mount(this.el);
    mount(
      this.el,
      h(
        "div",
        { class: "card prompt-card" },
        h(
          "div",
          { class: "card-head" },
          h("h2", {}, "A server asks"),
          h("span", { class: "muted small" }, "your answer goes to the server and is not kept"),
        ),
        [...this.forms.values()],
      ),
    );
  }

  form(p) {
    const who = `${p.host} (target ${p.target})`;
    const inputs = p.prompts.map((line) =>
      h("input", {
        type: line.echo ? "text" : "password",
        autocomplete: "off",
        spellcheck: "false",
        "aria-label": line.text,
      }),
    );
    const status = h("p", { class: "muted small" });
    const submit = async (ev) => {
      ev.preventDefault();
      const answers = inputs.map((i) => i.value);
      for (const i of inputs) i.value = "";
      try {
        await postJson(`/api/prompts/${encodeURIComponent(p.id)}/answer`, { answers });
        status.textContent = "Sent.";
      } catch (err) {
        status.textContent = `Not sent: ${err.message}`;
      }
      answers.fill("");
    };
    return h(
      "form",
      { class: "prompt", onsubmit: submit, dataset: { prompt: p.id } },
      h(
        "p",
        {},
        h("strong", {}, who),
        ` asks${p.kind === "passphrase" ? " for a key's passphrase" : ""}:`,
      ),
      p.message ? h("p", { class: "bad-text" }, p.message) : null,
      [p.name, p.instructions].filter((t) => t?.trim()).map((t) => h("p", {}, t)),
      p.prompts.map((line, i) => h("label", {}, h("span", {}, line.text), inputs[i])),
      h("button", { type: "submit", class: "btn btn-primary" }, "Answer"),
      status,
    );
  }
}
