// Entry of the page: drops the one-time token from the address bar, picks the view (review or
// live), and feeds both from the sidecar's event stream.
import { getJson } from "./api.js";
import { LiveView } from "./live.js";
import { ReviewView } from "./review.js";

const params = new URLSearchParams(location.search);
params.delete("token");
history.replaceState(
  null,
  "",
  `${location.pathname}${params.size ? `?${params}` : ""}${location.hash}`,
);

const views = {
  review: document.getElementById("view-review"),
  live: document.getElementById("view-live"),
};
const tabs = [...document.querySelectorAll(".tabs [data-view]")];
let review;
let live;

function show(name) {
  for (const [k, el] of Object.entries(views)) el.hidden = k !== name;
  for (const t of tabs) t.setAttribute("aria-selected", String(t.dataset.view === name));
  if (name === "live") {
    live?.tunnelChart.draw();
    live?.transferChart.draw();
  }
}

for (const t of tabs)
  t.addEventListener("click", () => {
    history.replaceState(null, "", `${location.pathname}${location.search}#${t.dataset.view}`);
    show(t.dataset.view);
  });

function setConn(state, text) {
  const el = document.getElementById("conn");
  el.dataset.state = state;
  document.getElementById("conn-text").textContent = text;
}

async function main() {
  const state = await getJson("/api/state");
  document.getElementById("foot").textContent =
    `parsl-sidecar ${state.version} · pid ${state.pid} · ${location.host}`;
  // a link for a review opens on it; otherwise the live view, with a pending review one tab away
  const asked = params.get("review");
  const reviewId = asked ?? state.reviews.filter((r) => r.state === "open").at(-1)?.id;
  live = new LiveView(views.live);
  if (reviewId) {
    document.getElementById("tab-review").hidden = false;
    review = new ReviewView(views.review, reviewId);
  }
  if (review && !asked) document.getElementById("tab-review").classList.add("pending");
  show(location.hash === "#live" || !review || !asked ? "live" : "review");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => setConn("up", "live"));
  source.addEventListener("error", () =>
    setConn("down", source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…"),
  );
  source.addEventListener("hello", (m) => live.onHello(JSON.parse(m.data)));
  source.addEventListener("sample", (m) => live.onSample(JSON.parse(m.data)));
  source.addEventListener("bus", (m) => {
    const e = JSON.parse(m.data);
    if (e.topic === "web.review") review?.onEvent(e.data);
    else live.onBus(e);
  });
  await Promise.all([review?.load(), live.load()]);
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  setConn("down", "error");
  const box = document.createElement("div");
  box.className = "banner banner-bad";
  box.id = "fatal";
  box.textContent = `The page could not load: ${err.message}`;
  document.querySelector("main").prepend(box);
});
