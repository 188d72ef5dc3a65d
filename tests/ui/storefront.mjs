// storefront.mjs — the storefront, the organiser console and the API reference in real
// headless Chromium (Debian's /usr/bin/chromium driven by playwright-core; nothing is
// downloaded). Run by tests/ui/test_storefront.sh against a ticketd it started:
//
//   node storefront.mjs BASE_URL ADMIN_TOKEN OUT_DIR SPEC_JSON [PRISM_URL]
//
// Scenarios, each at 390 px (a phone) and some again at 1280 px: a buyer's whole path
// (browse, hold, pay, COMPLETED, receipt); a declined card then a retry; a sold-out type;
// the waiting room from joining to admission (skipped, saying so, when this build has no
// queue routes); the organiser creating an event that the storefront then lists; the /docs
// page. Every JSON answer the pages received is validated against the OpenAPI document
// (ajv), so the spec is checked against what the server really sends; and a scripted sale
// goes through Prism (PRISM_URL, a validating proxy in front of the server) too. A screenshot of each
// step goes to OUT_DIR. Prints "N passed, N failed, N skipped" last; exits 1 on a failure.
import { chromium } from "playwright-core";
import Ajv from "ajv";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [base, token, out, specPath, prismUrl] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specPath, "utf8"));
const results = [];
const answers = []; // {method, path, status, body} of every JSON answer the pages saw

async function api(method, path, body, headers = {}, via = base) {
    const res = await fetch(via + path, {
        method,
        headers: { "Content-Type": "application/json", ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, body: json, violations: res.headers.get("sl-violations") };
}
const admin = { Authorization: `Bearer ${token}` };

async function createEvent(name, types) {
    const r = await api("POST", "/admin/events", { name, date: "2035-06-01T19:30:00Z", ticket_types: types }, admin);
    if (r.status !== 201) throw new Error(`creating ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.event.id;
}

function check(cond, what) {
    if (!cond) throw new Error(what);
}

// playwright gives each launch a fresh temporary profile (it refuses --user-data-dir here)
const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function page(width) {
    const context = await browser.newContext({ viewport: { width, height: width < 500 ? 844 : 900 } });
    const p = await context.newPage();
    p.on("response", async (res) => {
        const type = res.headers()["content-type"] || "";
        if (!type.startsWith("application/json")) return;
        const url = new URL(res.url());
        let body = null;
        try { body = await res.json(); } catch { return; }
        answers.push({ method: res.request().method(), path: url.pathname, status: res.status(), body });
    });
    p.on("pageerror", (e) => { p.jsErrors = (p.jsErrors || []).concat(String(e)); });
    return p;
}

async function shot(p, name) {
    await p.screenshot({ path: join(out, `${name}.png`), fullPage: true });
}

// nothing may stick out sideways: the page must fit the viewport it was given
async function fits(p, where) {
    const { scroll, width } = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
    check(scroll <= width, `${where}: the page is ${scroll} px wide in a ${width} px window`);
}

// WCAG AA contrast of every visible piece of text against the background it sits on
// (4.5:1, or 3:1 for large text); disabled controls are exempt, as WCAG exempts them.
async function contrast(p, where) {
    const { bad, checked } = await p.evaluate(() => {
        const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
        const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
            .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
        const background = (e) => {
            for (; e; e = e.parentElement) {
                const c = rgb(getComputedStyle(e).backgroundColor);
                if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
            }
            return [255, 255, 255];
        };
        const out = [];
        let n = 0;
        for (const e of document.querySelectorAll("body *")) {
            if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
            const st = getComputedStyle(e);
            const box = e.getBoundingClientRect();
            if (st.visibility === "hidden" || box.width === 0 || box.height === 0 || e.closest("[hidden],.sr-only,:disabled")) continue;
            n++;
            const fg = rgb(st.color), bg = background(e);
            const [a, b] = [lum(fg.slice(0, 3)), lum(bg)];
            const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
            const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
            if (ratio < need) out.push(`"${e.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
        }
        return { bad: out, checked: n };
    });
    check(checked >= 5, `${where}: only ${checked} pieces of text were checked for contrast`);
    check(bad.length === 0, `${where}: contrast below WCAG AA: ${bad.slice(0, 5).join("; ")}`);
}

async function scenario(name, fn) {
    const started = Date.now();
    try {
        const outcome = await fn();
        if (outcome && outcome.skip) {
            results.push({ name, state: "skipped" });
            console.log(`SKIP ${name}: ${outcome.skip}`);
        } else {
            results.push({ name, state: "passed" });
            console.log(`ok   ${name} (${Date.now() - started} ms)`);
        }
    } catch (e) {
        results.push({ name, state: "failed" });
        console.log(`FAIL ${name}: ${e.message}`);
    }
}

async function buyAndPay(p, eventId, type, amount, cards, prefix) {
    await p.goto(`${base}/#/event/${eventId}`);
    await p.locator(`#qty-${type}`).waitFor();
    await p.locator("#hold-button").waitFor({ state: "visible" });
    await p.selectOption(`#qty-${type}`, String(amount));
    await shot(p, `${prefix}-2-event`);
    await p.click("#hold-button");
    await p.waitForURL(/#\/reservation\//);
    await p.locator("#pay-form").waitFor({ state: "visible" });
    const countdown = await p.textContent("#countdown");
    check(/^\d+:\d\d$/.test(countdown.trim()), `the countdown reads "${countdown}"`);
    await shot(p, `${prefix}-3-hold`);
    await contrast(p, "the hold");
    for (const [i, card] of cards.entries()) {
        await p.fill("#card", card);
        await p.click("#pay-button");
        await p.waitForFunction(() => ["COMPLETED", "ERROR"].includes(document.getElementById("pay-status").dataset.state || ""));
        const state = await p.getAttribute("#pay-status", "data-state");
        await shot(p, `${prefix}-4-pay-${i + 1}`);
        await contrast(p, "the payment's outcome");
        if (state === "ERROR") {
            await p.evaluate(() => { document.getElementById("pay-status").dataset.state = ""; });
            continue;
        }
        await p.locator("#receipt").waitFor({ state: "visible" });
        break;
    }
    const rid = decodeURIComponent(new URL(p.url()).hash.split("/")[2]);
    return rid;
}

// 1. A buyer's whole path, on a phone and on a desktop.
const gala = await createEvent("Browser Gala", [{ type: "VIP", price: 350, amount: 20 }, { type: "Standing", price: 19.99, amount: 200 }]);
for (const width of [390, 1280]) {
    await scenario(`buyer browses, holds, pays and gets a receipt (${width} px)`, async () => {
        const p = await page(width);
        await p.goto(`${base}/`);
        const link = p.locator(`a[data-event-id="${gala}"]`);
        await link.waitFor();
        await fits(p, "the event list");
        await contrast(p, "the event list");
        await shot(p, `buyer-${width}-1-list`);
        await link.focus();
        await p.keyboard.press("Enter"); // keyboard operable
        await p.locator("#type-VIP-left").waitFor();
        await p.waitForFunction(() => document.getElementById("type-Standing-left").textContent.trim() !== "");
        await fits(p, "the event page");
        await contrast(p, "the event page");
        const before = Number(await p.getAttribute("#type-Standing-left", "data-value"));
        const rid = await buyAndPay(p, gala, "Standing", 2, ["4242424242424242"], `buyer-${width}`);
        await fits(p, "the receipt");
        await contrast(p, "the receipt");
        const tickets = await p.locator("#receipt-tickets .ticket").count();
        check(tickets === 2, `the receipt lists ${tickets} tickets, not 2`);
        const res = await api("GET", `/events/reservation/?reservation_id=${rid}`);
        check(res.body.reservation.status === "COMPLETED", `the reservation is ${res.body.reservation.status}`);
        // the live figure moved without a reload
        await p.goto(`${base}/#/event/${gala}`);
        await p.waitForFunction((b) => {
            const e = document.getElementById("type-Standing-left");
            return e && e.dataset.value !== undefined && Number(e.dataset.value) <= b - 2;
        }, before);
        check(!p.jsErrors, `script errors: ${p.jsErrors}`);
        await p.context().close();
    });
}

// 2. A declined card, then a retry with a good one.
await scenario("a declined card shows the bank's reason, a retry pays (390 px)", async () => {
    const p = await page(390);
    let declined = "";
    p.on("response", async (res) => {
        if (res.url().includes("/transactions/list/")) {
            const b = await res.json().catch(() => null);
            if (b && b.status === "ERROR") declined = b.transaction_error;
        }
    });
    const rid = await buyAndPay(p, gala, "VIP", 1, ["4000 0000 0000 0002", "4242 4242 4242 4242"], "declined");
    check(declined === "Your card has been declined", `the decline said "${declined}"`);
    const res = await api("GET", `/events/reservation/?reservation_id=${rid}`);
    check(res.body.reservation.status === "COMPLETED", `after the retry the reservation is ${res.body.reservation.status}`);
    await p.context().close();
});

// 2b. Type names that differ only in characters an element id cannot hold keep their own rows.
await scenario("types whose names differ in spaces or letters outside ASCII are chosen apart (390 px)", async () => {
    const ev = await createEvent("Twin Boxes", [
        { type: "VIP Box", price: 50, amount: 5 }, { type: "VIP_Box", price: 40, amount: 5 },
        { type: "Партер", price: 30, amount: 5 }, { type: "Балкон", price: 20, amount: 5 },
    ]);
    const p = await page(390);
    await p.goto(`${base}/#/event/${ev}`);
    await p.locator('select[data-type="VIP_Box"]').waitFor();
    await p.locator("#hold-button").waitFor({ state: "visible" });
    await p.selectOption('select[data-type="VIP_Box"]', "2");
    await p.selectOption('select[data-type="Балкон"]', "1");
    await p.click("#hold-button");
    await p.waitForURL(/#\/reservation\//);
    const rid = decodeURIComponent(new URL(p.url()).hash.split("/")[2]);
    const res = await api("GET", `/events/reservation/?reservation_id=${rid}`);
    const held = {};
    for (const t of res.body.tickets) held[t.type] = (held[t.type] || 0) + 1;
    check(held["VIP_Box"] === 2 && held["Балкон"] === 1 && Object.keys(held).length === 2, `held ${JSON.stringify(held)}`);
    await p.context().close();
});

// 3. A sold-out type: shown as such, and a hold for more than is left explains itself.
await scenario("a sold-out type is marked and cannot be chosen (390 px)", async () => {
    const ev = await createEvent("Tiny Club", [{ type: "Front", price: 80, amount: 1 }, { type: "Back", price: 25.5, amount: 3 }]);
    const p = await page(390);
    await p.goto(`${base}/#/event/${ev}`);
    await p.locator("#qty-Back").waitFor();
    await p.selectOption("#qty-Back", "3");
    // someone else takes the last Front ticket and two Back tickets meanwhile
    const r1 = await api("POST", "/events/reservation/", { event_id: ev, tickets: [{ type: "Front", amount: 1 }, { type: "Back", amount: 2 }] });
    check(r1.status === 201, `the other buyer's hold: ${r1.status}`);
    await p.click("#hold-button");
    await p.waitForFunction(() => /sufficient quantity of Back/.test(document.getElementById("event-message").textContent));
    await p.waitForFunction(() => document.getElementById("type-Front-left").textContent.trim() === "Sold out");
    check(await p.locator("#qty-Front").isDisabled(), "the sold-out type can still be chosen");
    await fits(p, "the sold-out event");
    await contrast(p, "the sold-out event");
    await shot(p, "soldout-1-event");
    const stats = await api("GET", `/events/stats/?event_id=${ev}`, undefined, admin);
    check(stats.body.live.turned_away >= 1, `turned_away is ${stats.body.live.turned_away}`);
    check(stats.body.live.sold_out_at === null, `sold_out_at is ${stats.body.live.sold_out_at} with a ticket left`);
    const last = await api("POST", "/events/reservation/", { event_id: ev, tickets: [{ type: "Back", amount: 1 }] });
    check(last.status === 201, `the last ticket's hold: ${last.status}`);
    const after = await api("GET", `/events/stats/?event_id=${ev}`, undefined, admin);
    check(typeof after.body.live.sold_out_at === "string", `sold_out_at is ${after.body.live.sold_out_at} once nothing is left`);
    await p.context().close();
});

// 4. The waiting room, from joining to admission.
await scenario("the waiting room admits a buyer who then holds (390 px)", async () => {
    const ev = await createEvent("Queue Night", [{ type: "GA", price: 30, amount: 50 }]);
    const probe = await api("POST", "/events/queue/", { event_id: ev });
    if (probe.status === 404 && probe.body && probe.body.error !== "Event does not exist")
        return { skip: "this build has no waiting-room routes (POST /events/queue/ answers 404 'no such route')" };
    const opens = new Date(Date.now() - 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const put = await api("PUT", `/admin/events/${ev}/waiting-room`, { enabled: true, opens_at: opens, admit_per_minute: 30, admission_seconds: 600 }, admin);
    check(put.status === 200, `setting the room: ${put.status} ${JSON.stringify(put.body)}`);
    // a few buyers ahead of ours, so that there is a queue to see
    for (let i = 0; i < 3; ++i) await api("POST", "/events/queue/", { event_id: ev });
    const p = await page(390);
    await p.goto(`${base}/#/event/${ev}`);
    await p.locator("#queue-panel").waitFor({ state: "visible", timeout: 10000 });
    await p.waitForFunction(() => document.getElementById("queue-position").dataset.value !== "");
    await shot(p, "queue-1-waiting");
    await fits(p, "the waiting room");
    check(await p.locator("#type-GA-left").isVisible(), "the queue hides the tickets left");
    check(!(await p.locator("#hold-button").isVisible()), "a queued buyer can already hold");
    await p.locator("#hold-button").waitFor({ state: "visible", timeout: 30000 });
    await shot(p, "queue-2-admitted");
    await p.selectOption("#qty-GA", "2");
    await p.click("#hold-button");
    await p.waitForURL(/#\/reservation\//);
    await p.locator("#pay-form").waitFor({ state: "visible" });
    await shot(p, "queue-3-hold");
    // the organiser sees the room's figures and pauses it from the console
    const c = await p.context().newPage();
    await c.goto(`${base}/admin/#token=${encodeURIComponent(token)}&event=${ev}`);
    await c.waitForFunction(() => (document.getElementById("room-admitted").dataset.value || "") !== "");
    check(await c.isChecked("#room-enabled"), "the console shows the room as off");
    await c.click("#room-toggle");
    await c.waitForFunction(() => document.getElementById("room-note").dataset.kind === "ok");
    await shot(c, "queue-4-console-paused");
    const room = await api("GET", `/admin/events/${ev}/waiting-room`, undefined, admin);
    check(room.body && room.body.enabled === false, `after pausing, the room reads ${JSON.stringify(room.body)}`);
    await p.context().close();
});

// 5. The organiser creates an event in the console; the storefront lists it.
for (const width of [390, 1280]) {
    await scenario(`the organiser creates an event that the storefront lists (${width} px)`, async () => {
        const p = await page(width);
        await p.goto(`${base}/admin/#token=${encodeURIComponent(token)}&event=${gala}`);
        await p.waitForFunction(() => document.getElementById("status").dataset.state === "live");
        await fits(p, "the console");
        await contrast(p, "the console");
        await shot(p, `organiser-${width}-1-console`);
        const name = `Organiser Night ${width}`;
        await p.fill("#new-name", name);
        await p.fill("#new-date", "2034-09-12T20:00");
        await p.fill("#new-type-1-type", "Seated");
        await p.fill("#new-type-1-price", "45.90");
        await p.fill("#new-type-1-amount", "120");
        await p.click("#add-type");
        await p.fill("#new-type-2-type", "Balcony");
        await p.fill("#new-type-2-price", "19.99");
        await p.fill("#new-type-2-amount", "40");
        await p.click("#create-submit");
        await p.waitForFunction(() => document.getElementById("create-note").dataset.kind === "ok");
        const id = await p.getAttribute("#create-note", "data-event-id");
        await p.waitForFunction(() => document.getElementById("stat-capacity").dataset.value === "160");
        await shot(p, `organiser-${width}-2-created`);
        const s = await p.context().newPage();
        await s.goto(`${base}/`);
        await s.locator(`a[data-event-id="${id}"]`).waitFor();
        check((await s.textContent(`a[data-event-id="${id}"]`)).includes(name), "the storefront lists another name");
        await s.click(`a[data-event-id="${id}"]`);
        await s.locator("#type-Balcony-left").waitFor();
        await s.waitForFunction(() => document.getElementById("type-Balcony-left").dataset.value === "40");
        await shot(s, `organiser-${width}-3-storefront`);
        await p.context().close();
    });
}

// 6. The console shows what the server kept: demand turned away, failed payments, the history.
await scenario("the console shows turned-away demand, failed payments and the kept history after a reload", async () => {
    const p = await page(1280);
    await p.goto(`${base}/admin/#token=${encodeURIComponent(token)}&event=${gala}`);
    await p.waitForFunction(() => document.getElementById("status").dataset.state === "live");
    const failed = Number(await p.getAttribute("#stat-payments-failed", "data-value"));
    check(failed >= 1, `failed payments shows ${failed}`);
    // the history is sampled every 5 s by the server; wait for two samples, then reload
    await p.waitForFunction(() => /samples/.test(document.getElementById("chart-caption").textContent), null, { timeout: 15000 });
    await p.reload();
    await p.waitForFunction(() => /Kept by the server: \d+ samples/.test(document.getElementById("chart-caption").textContent), null, { timeout: 15000 });
    await shot(p, "organiser-4-history");
    await p.context().close();
});

// 7. The API reference renders the spec.
await scenario("the /docs page renders every path of the spec (390 px)", async () => {
    const p = await page(390);
    await p.goto(`${base}/docs`);
    await p.waitForFunction(() => document.querySelectorAll("[data-path]").length > 0);
    const shown = await p.$$eval("[data-path]", (els) => els.map((e) => e.dataset.method + " " + e.dataset.path));
    for (const [path, item] of Object.entries(spec.paths))
        for (const m of Object.keys(item).filter((k) => ["get", "post", "put", "delete", "head"].includes(k)))
            check(shown.includes(m.toUpperCase() + " " + path), `/docs does not show ${m.toUpperCase()} ${path}`);
    await fits(p, "the docs");
    await contrast(p, "the docs");
    await shot(p, "docs-1");
    await p.context().close();
});

// 8. A sale through Prism, the validating proxy: every request and answer must match the spec.
await scenario("a sale through Prism's validating proxy breaks no rule of openapi.yaml", async () => {
    if (!prismUrl) return { skip: "no Prism URL given" };
    const J = {}, A = admin, bad = [];
    const call = async (method, path, body, headers, want) => {
        const r = await api(method, path, body, headers, prismUrl);
        if (r.status !== want || r.violations) bad.push(`${method} ${path}: ${r.status} (want ${want}) ${r.violations || JSON.stringify(r.body).slice(0, 200)}`);
        return r;
    };
    const created = await call("POST", "/admin/events", { name: "Prism Fair", date: "2035-02-01T18:00:00Z",
        ticket_types: [{ type: "Day", price: 19.99, amount: 3 }, { type: "Week", price: 120.5, amount: 2 }] }, A, 201);
    const ev = created.body && created.body.event && created.body.event.id;
    check(ev, `creating the event through Prism: ${bad.join("; ")}`);
    await call("GET", "/events/event/?current_page=1&page_size=100", undefined, J, 200);
    await call("POST", "/events/event/", { event_id: ev }, J, 200);
    const held = await call("POST", "/events/reservation/", { event_id: ev, tickets: [{ type: "Day", amount: 2 }] }, J, 201);
    const rid = held.body && held.body.reservation_id;
    await call("POST", "/events/reservation/", { event_id: ev, tickets: [{ type: "Day", amount: 2 }] }, J, 409);
    await call("POST", "/events/reservation/", { event_id: ev, tickets: [{ type: "Gold", amount: 1 }] }, J, 400);
    await call("GET", `/events/reservation/?reservation_id=${rid}`, undefined, J, 200);
    const paid = await call("PUT", "/events/reservation/", { reservation_id: rid, card: "4000000000000002" }, J, 202);
    for (let i = 0; i < 50; ++i) {
        const t = await call("GET", `/transactions/list/?transaction_id=${paid.body.transaction_id}`, undefined, J, 200);
        if (t.body && t.body.status !== "PENDING") break;
        await new Promise((r) => setTimeout(r, 100));
    }
    const paid2 = await call("PUT", "/events/reservation/", { reservation_id: rid, card: "4242424242424242" }, J, 202);
    for (let i = 0; i < 50; ++i) {
        const t = await call("GET", `/transactions/list/?transaction_id=${paid2.body.transaction_id}`, undefined, J, 200);
        if (t.body && t.body.status === "COMPLETED") break;
        await new Promise((r) => setTimeout(r, 100));
    }
    await call("DELETE", "/events/reservation/", { reservation_id: rid }, J, 409);
    await call("GET", `/events/stats/?event_id=${ev}`, undefined, A, 200);
    await call("GET", "/healthz", undefined, J, 200);
    await call("POST", "/openapi.yaml", {}, J, 405);
    check(bad.length === 0, bad.join("; "));
});

// 9. Every JSON answer the pages received matches the OpenAPI document.
await scenario("every answer the browser received matches openapi.yaml", async () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addFormat("uuid", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    ajv.addFormat("date-time", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
    // OpenAPI 3.0's "nullable" beside allOf/$ref (no "type") is not JSON Schema: say it as anyOf
    const nullable = (x) => {
        if (Array.isArray(x)) return x.map(nullable);
        if (!x || typeof x !== "object") return x;
        const out = Object.fromEntries(Object.entries(x).map(([k, v]) => [k, nullable(v)]));
        if (out.nullable === true && out.type === undefined) {
            delete out.nullable;
            return { anyOf: [out, { type: "null" }] };
        }
        return out;
    };
    ajv.addSchema({ $id: "spec", components: nullable(spec.components) });
    const fix = (schema) => nullable(JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"spec#/components/')));
    const routes = Object.keys(spec.paths).map((p) => ({ p, re: new RegExp("^" + p.replace(/\{[^}]+\}/g, "[^/]+").replace(/\/$/, "") + "/?$") }));
    let checked = 0;
    const problems = [];
    for (const a of answers) {
        const route = routes.find((r) => r.re.test(a.path));
        if (!route && a.status === 404 && a.body && a.body.error === "Not found") continue; // a route this build lacks
        if (!route) { problems.push(`${a.method} ${a.path}: not in the spec`); continue; }
        const op = spec.paths[route.p][a.method.toLowerCase()];
        if (!op) { problems.push(`${a.method} ${route.p}: no such operation in the spec`); continue; }
        const resp = op.responses[String(a.status)] || op.responses.default;
        if (!resp) { problems.push(`${a.method} ${route.p}: status ${a.status} is not declared`); continue; }
        const r = resp.$ref ? spec.components.responses[resp.$ref.split("/").pop()] : resp;
        const schema = r.content && r.content["application/json"] && r.content["application/json"].schema;
        if (!schema) continue;
        const validate = ajv.compile(fix(schema));
        if (!validate(a.body)) problems.push(`${a.method} ${route.p} ${a.status}: ${ajv.errorsText(validate.errors)}`);
        checked++;
    }
    writeFileSync(join(out, "answers.json"), JSON.stringify(answers, null, 1));
    check(checked > 20, `only ${checked} answers were checked`);
    check(problems.length === 0, [...new Set(problems)].slice(0, 8).join("; "));
    console.log(`     ${checked} answers validated`);
});

await browser.close();
const count = (s) => results.filter((r) => r.state === s).length;
console.log(`screenshots in ${out}`);
console.log(`${count("passed")} passed, ${count("failed")} failed, ${count("skipped")} skipped`);
process.exit(count("failed") ? 1 : 0);
