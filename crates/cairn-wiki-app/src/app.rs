//! The Leptos components (wasm32 only). Each screen loads what it shows with `wiki_…`
//! requests to the worker when it is opened, and again after each of its actions.

use std::collections::HashMap;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::markdown::{LinkTarget, render, wiki_targets};
use crate::route::Route;

#[wasm_bindgen]
extern "C" {
    /// `cairn.call(op, fields)` of cairn.js (`window.cairn` is what `startCairn()` returned).
    #[wasm_bindgen(js_namespace = cairn, js_name = call)]
    fn cairn_call(op: &str, fields: JsValue) -> js_sys::Promise;
    /// `cairn.on(event, cb)` of cairn.js: the worker's events (`peers`: a connection changed
    /// state or moved nodes).
    #[wasm_bindgen(js_namespace = cairn, js_name = on)]
    fn cairn_on(event: &str, cb: &js_sys::Function);
}

/// A counter that grows (at most every half second) after the worker received nodes from a
/// peer, so the screen on show reloads what it shows: edits made elsewhere appear without a
/// reload of the page.
///
/// Not while a connection is in its first sync (`syncing`): each reload makes the worker
/// bring the wiki's views up to every node stored so far, between the session's messages,
/// and a new browser receiving a large wiki then spent most of its time indexing half-received
/// history (a 100k-edit wiki took 102 s instead of 16 s). The screen reloads once the sync is
/// done (`live`, or the connection ended).
fn received_revision() -> RwSignal<u64> {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    let rev = RwSignal::new(0u64);
    let seen: Rc<RefCell<HashMap<String, f64>>> = Rc::default();
    let pending = Rc::new(Cell::new(false));
    let held: Rc<RefCell<std::collections::HashSet<String>>> = Rc::default();
    let cb = Closure::<dyn Fn(JsValue)>::new(move |m: JsValue| {
        let peer = js_sys::Reflect::get(&m, &"peer".into()).unwrap_or(JsValue::UNDEFINED);
        let field = |k: &str| js_sys::Reflect::get(&peer, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let (Some(id), Some(got)) = (field("id").as_f64(), field("nodes_received").as_f64()) else {
            return;
        };
        let syncing = field("state").as_string().as_deref() == Some("syncing");
        let before = seen.borrow_mut().insert(id.to_string(), got).unwrap_or(0.0);
        if syncing {
            // Counted as seen, shown when the first sync is done (`held`).
            if got > before {
                held.borrow_mut().insert(id.to_string());
            }
            return;
        }
        let was_held = held.borrow_mut().remove(&id.to_string());
        if (got > before || was_held) && !pending.replace(true) {
            let pending = pending.clone();
            set_timeout(
                move || {
                    pending.set(false);
                    rev.update(|r| *r += 1);
                },
                std::time::Duration::from_millis(500),
            );
        }
    });
    cairn_on("peers", cb.as_ref().unchecked_ref());
    // The app lives as long as the page: so does its listener.
    cb.forget();
    rev
}

/// One request to the worker: the `ok` of its answer, or its error's message.
async fn api(op: &str, fields: Value) -> Result<Value, String> {
    let fields = js_sys::JSON::parse(&fields.to_string()).map_err(|_| "bad request".to_owned())?;
    let answer = JsFuture::from(cairn_call(op, fields))
        .await
        .map_err(|e| format!("the worker did not answer: {e:?}"))?;
    let text: String = js_sys::JSON::stringify(&answer)
        .map(String::from)
        .map_err(|_| "unreadable answer".to_owned())?;
    let mut v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if let Some(e) = v.get("error") {
        return Err(e["message"].as_str().unwrap_or("error").to_owned());
    }
    Ok(v["ok"].take())
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

fn go(route: &Route) {
    let _ = window().location().set_hash(&route.href());
}

fn when(ms: &Value) -> String {
    match ms.as_f64() {
        Some(t) if t > 0.0 => {
            let iso: String = js_sys::Date::new(&JsValue::from_f64(t))
                .to_iso_string()
                .into();
            iso.get(..16).unwrap_or(&iso).replace('T', " ")
        }
        _ => "no time given".into(),
    }
}

fn short(hex: &str) -> String {
    hex.get(..8).unwrap_or(hex).to_owned()
}

fn who(name: &Value, key: &Value) -> String {
    let k = key.as_str().map(short);
    match (name.as_str(), k) {
        (Some(n), Some(k)) => format!("{n} ({k})"),
        (None, Some(k)) => k,
        _ => "unsigned".into(),
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// Renders Markdown after asking the worker which wiki-link targets exist.
async fn to_html(text: String) -> String {
    let raw = wiki_targets(&text);
    let mut targets = HashMap::new();
    if !raw.is_empty()
        && let Ok(answer) = api("wiki_titles", json!({ "titles": raw })).await
    {
        for (r, a) in raw.into_iter().zip(list(&answer)) {
            targets.insert(
                r,
                LinkTarget {
                    title: a["title"].as_str().map(str::to_owned),
                    state: s(&a["state"]),
                },
            );
        }
    }
    render(&text, &targets)
}

/// Starts the app in the page's body.
#[wasm_bindgen(start)]
pub(crate) fn start() {
    leptos::mount::mount_to_body(App);
    crate::images::watch();
}

fn current_route() -> Route {
    Route::parse(&window().location().hash().unwrap_or_default())
}

#[component]
fn App() -> impl IntoView {
    let route = RwSignal::new(current_route());
    let received = received_revision();
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        route.set(current_route());
    });
    let query = RwSignal::new(String::new());
    let search = move |ev: SubmitEvent| {
        ev.prevent_default();
        go(&Route::Search(query.get_untracked()));
    };
    view! {
        <header>
            <a class="brand" href="#/">"cairn wiki"</a>
            <nav aria-label="Wiki">
                <a href="#/pages">"Pages"</a>
                <a href="#/changes">"Recent changes"</a>
                <a href="#/people">"People"</a>
            </nav>
            <form role="search" on:submit=search>
                <input type="search" aria-label="Search" placeholder="Search"
                    prop:value=move || query.get()
                    on:input=move |ev| query.set(event_target_value(&ev))/>
                <button type="submit">"Go"</button>
            </form>
        </header>
        <main>
            {move || {
                let route = route.get();
                // Reload the screen when nodes arrive from peers — except the editor, whose
                // unsaved text must stay (its save links the heads current at save time).
                if !matches!(route, Route::Edit(_)) {
                    received.track();
                }
                match route {
                Route::Page(t) => view! { <PageView title=t/> }.into_any(),
                Route::Edit(t) => view! { <EditView title=t/> }.into_any(),
                Route::History(t) => view! { <HistoryView title=t/> }.into_any(),
                Route::Diff(t, a, b) => view! { <DiffView title=t a=a b=b/> }.into_any(),
                Route::Changes => view! { <ChangesView/> }.into_any(),
                Route::Search(q) => view! { <SearchView query=q/> }.into_any(),
                Route::Pages => view! { <PagesView/> }.into_any(),
                Route::People => view! { <PeopleView/> }.into_any(),
            }}}
        </main>
    }
}

/// A slot for one request's answer: `None` while loading.
type Slot = RwSignal<Option<Result<Value, String>>>;

fn load(slot: Slot, op: &'static str, fields: Value) {
    spawn_local(async move {
        slot.set(Some(api(op, fields).await));
    });
}

fn error_view(e: String) -> AnyView {
    view! { <p class="error" role="alert">{e}</p> }.into_any()
}

fn loading() -> AnyView {
    view! { <p class="loading">"Loading…"</p> }.into_any()
}

/// Sanitized Markdown of `text`.
#[component]
fn Rendered(text: String) -> impl IntoView {
    let html = RwSignal::new(String::new());
    spawn_local(async move { html.set(to_html(text).await) });
    view! { <div class="content" inner_html=move || html.get()></div> }
}

fn version_meta(v: &Value) -> AnyView {
    let signed = if v["verified"].as_bool() == Some(true) {
        "signed ✓"
    } else {
        "unsigned"
    };
    view! {
        <p class="meta">
            <span>{who(&v["name"], &v["author"])}</span>" · "
            <span>{when(&v["time"])}</span>" · "
            <span title="the signature was verified when the edit was stored">{signed}</span>
            {(!s(&v["summary"]).is_empty()).then(|| view! { " · " <i>{s(&v["summary"])}</i> })}
        </p>
    }
    .into_any()
}

fn body_view(v: &Value) -> AnyView {
    match v["kind"].as_str() {
        Some("text") => view! { <Rendered text=s(&v["text"])/> }.into_any(),
        Some("redirect") => {
            let to = s(&v["redirect"]);
            view! {
                <p class="notice">"This page was moved to "
                    <a href=Route::Page(to.clone()).href()>{to.clone()}</a>"."</p>
            }
            .into_any()
        }
        Some("deleted") => {
            view! { <p class="notice">"This version deleted the page."</p> }.into_any()
        }
        _ => view! {
            <p class="broken">"This version is broken and cannot be shown: "
                {s(&v["broken"])}</p>
        }
        .into_any(),
    }
}

#[component]
fn PageView(title: String) -> impl IntoView {
    let page: Slot = RwSignal::new(None);
    let backlinks: Slot = RwSignal::new(None);
    let t = title.clone();
    let reload = move || {
        load(page, "wiki_page", json!({ "title": t }));
        load(backlinks, "wiki_backlinks", json!({ "title": t }));
    };
    reload();
    let status = RwSignal::new(String::new());
    let act = move |op: &'static str, fields: Value, done: &'static str| {
        let reload = reload.clone();
        spawn_local(async move {
            match api(op, fields).await {
                Ok(_) => {
                    status.set(done.to_owned());
                    reload();
                }
                Err(e) => status.set(e),
            }
        });
    };
    let new_title = RwSignal::new(String::new());
    view! {
        <article>
            {move || match page.get() {
                None => loading(),
                Some(Err(e)) => error_view(e),
                Some(Ok(p)) => {
                    let title = s(&p["title"]);
                    let versions = list(&p["versions"]);
                    let body = if p["exists"] == json!(false) {
                        view! {
                            <p class="notice">"This page does not exist yet. "
                                <a href=Route::Edit(title.clone()).href()>"Create this page"</a></p>
                        }.into_any()
                    } else if p["forked"] == json!(true) {
                        let n = versions.len();
                        view! {
                            <div class="fork" role="status">
                                <p><b>"This page is forked: "</b>{n}
                                " versions were saved concurrently. Nothing is lost: each is shown below. "</p>
                                <a class="button" href=Route::Edit(title.clone()).href()>"Merge"</a>
                            </div>
                            {versions.iter().enumerate().map(|(i, v)| view! {
                                <section class="version" aria-label=format!("Version {}", i + 1)>
                                    <h2>{format!("Version {} of {n}", i + 1)}</h2>
                                    {version_meta(v)}
                                    {body_view(v)}
                                </section>
                            }).collect_view()}
                            {(p["hidden"].as_u64().unwrap_or(0) > 0).then(|| view! {
                                <p class="meta">"Versions by blocked people are hidden."</p>
                            })}
                        }.into_any()
                    } else if let Some(v) = versions.first() {
                        let deleted = p["deleted"] == json!(true);
                        let t2 = title.clone();
                        let act = act.clone();
                        view! {
                            {version_meta(v)}
                            {body_view(v)}
                            {deleted.then(|| view! {
                                <button on:click=move |_| act("wiki_undelete",
                                    json!({"title": t2.clone(), "summary": "undelete", "time": now()}),
                                    "Restored.")>"Undelete"</button>
                            })}
                        }.into_any()
                    } else {
                        view! { <p class="meta">"Every version of this page is by a blocked person."</p> }.into_any()
                    };
                    let exists = p["exists"] == json!(true) && p["deleted"] != json!(true);
                    let (t_del, t_ren) = (title.clone(), title.clone());
                    let act = act.clone();
                    view! {
                        <h1>{title.clone()}</h1>
                        <nav class="tools" aria-label="Page">
                            <a href=Route::Edit(title.clone()).href()>"Edit"</a>
                            <a href=Route::History(title.clone()).href()>"History"</a>
                        </nav>
                        {body}
                        {exists.then(|| view! {
                            <details class="more">
                                <summary>"Rename or delete"</summary>
                                <form on:submit=move |ev: SubmitEvent| {
                                    ev.prevent_default();
                                    let to = new_title.get_untracked();
                                    let from = t_ren.clone();
                                    spawn_local(async move {
                                        match api("wiki_rename", json!({"from": from, "to": to, "summary": "rename", "time": now()})).await {
                                            Ok(_) => go(&Route::Page(to)),
                                            Err(e) => status.set(e),
                                        }
                                    });
                                }>
                                    <label for="new-title">"New title"</label>
                                    <input id="new-title" on:input=move |ev| new_title.set(event_target_value(&ev))/>
                                    <button type="submit">"Rename"</button>
                                </form>
                                <button class="danger" on:click=move |_| act("wiki_delete",
                                    json!({"title": t_del.clone(), "summary": "delete", "time": now()}),
                                    "Deleted.")>"Delete page"</button>
                            </details>
                        })}
                    }.into_any()
                }
            }}
            <p class="status" role="status">{move || status.get()}</p>
            <section class="backlinks" aria-label="What links here">
                <h2>"What links here"</h2>
                {move || match backlinks.get() {
                    Some(Ok(b)) if b.as_array().is_some_and(|a| !a.is_empty()) => view! {
                        <ul>{list(&b).iter().map(|t| {
                            let t = s(t);
                            let href = Route::Page(t.clone()).href();
                        view! { <li><a href=href>{t}</a></li> }
                        }).collect_view()}</ul>
                    }.into_any(),
                    Some(Err(e)) => error_view(e),
                    _ => view! { <p class="meta">"No page links here."</p> }.into_any(),
                }}
            </section>
        </article>
    }
}

#[component]
fn EditView(title: String) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let summary = RwSignal::new(String::new());
    let heads = RwSignal::new(Vec::<String>::new());
    let note = RwSignal::new(None::<String>);
    let ready = RwSignal::new(false);
    let shown = RwSignal::new(title.clone());
    let preview = RwSignal::new(String::new());
    let generation = RwSignal::new(0u64);
    let update_preview = move || {
        let g = generation.get_untracked() + 1;
        generation.set(g);
        let t = text.get_untracked();
        spawn_local(async move {
            let html = to_html(t).await;
            if generation.get_untracked() == g {
                preview.set(html);
            }
        });
    };
    let t = title.clone();
    spawn_local(async move {
        match api("wiki_page", json!({ "title": t })).await {
            Ok(p) => {
                shown.set(s(&p["title"]));
                heads.set(list(&p["heads"]).iter().map(s).collect());
                let versions = list(&p["versions"]);
                if p["forked"] == json!(true) {
                    match api("wiki_merge", json!({ "title": t })).await {
                        Ok(m) => {
                            text.set(s(&m["text"]));
                            heads.set(list(&m["heads"]).iter().map(s).collect());
                            summary.set("merge".into());
                            let c = m["conflicts"].as_u64().unwrap_or(0);
                            note.set(Some(if c == 0 {
                                format!("Merging {} versions: the proposal below joins them without conflicts.", versions.len())
                            } else {
                                format!("Merging {} versions: {c} conflict(s) are marked with <<<<<<< and >>>>>>>; resolve them before saving.", versions.len())
                            }));
                        }
                        Err(e) => note.set(Some(e)),
                    }
                } else if let [v] = versions.as_slice() {
                    text.set(s(&v["text"]));
                }
                ready.set(true);
                update_preview();
            }
            Err(e) => note.set(Some(e)),
        }
    });
    let error = RwSignal::new(None::<String>);
    // Images: each file is stored as a blob by the worker, and its Markdown goes in at the
    // cursor (after the previous one's).
    let area: NodeRef<leptos::html::Textarea> = NodeRef::new();
    let add_files = move |files: Option<web_sys::FileList>| {
        let files: Vec<web_sys::File> = files
            .map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect())
            .unwrap_or_default();
        if files.is_empty() {
            return false;
        }
        spawn_local(async move {
            for f in files {
                match crate::images::add_file(&f).await {
                    Ok(md) => {
                        insert_at_cursor(area, text, &md);
                        update_preview();
                    }
                    Err(e) => error.set(Some(e)),
                }
            }
        });
        true
    };
    let save = move |ev: SubmitEvent| {
        ev.prevent_default();
        let title = shown.get_untracked();
        let fields = json!({
            "title": title,
            "text": text.get_untracked(),
            "summary": summary.get_untracked(),
            "time": now(),
            "links": heads.get_untracked(),
        });
        spawn_local(async move {
            match api("wiki_save", fields).await {
                Ok(_) => go(&Route::Page(title)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <h1>"Editing " {move || shown.get()}</h1>
        {move || note.get().map(|n| view! { <p class="fork" role="status">{n}</p> })}
        <form class="editor" on:submit=save>
            <div class="panes">
                <div class="pane">
                    <label for="page-text">"Page text"</label>
                    <textarea id="page-text" rows="18" spellcheck="true" node_ref=area
                        prop:value=move || text.get()
                        on:input=move |ev| { text.set(event_target_value(&ev)); update_preview(); }
                        on:paste=move |ev: web_sys::ClipboardEvent| {
                            if add_files(ev.clipboard_data().and_then(|d| d.files())) {
                                ev.prevent_default();
                            }
                        }
                        on:dragover=move |ev: web_sys::DragEvent| ev.prevent_default()
                        on:drop=move |ev: web_sys::DragEvent| {
                            if add_files(ev.data_transfer().and_then(|d| d.files())) {
                                ev.prevent_default();
                            }
                        }></textarea>
                    <div class="row">
                        <label for="add-image">"Add image"</label>
                        <input id="add-image" type="file" accept="image/*" multiple
                            on:change=move |ev| {
                                let input: web_sys::HtmlInputElement = event_target(&ev);
                                add_files(input.files());
                                input.set_value("");
                            }/>
                    </div>
                </div>
                <div class="pane">
                    <h2 id="preview-label">"Preview"</h2>
                    <div class="content preview" aria-labelledby="preview-label"
                        inner_html=move || preview.get()></div>
                </div>
            </div>
            <label for="summary">"Summary"</label>
            <input id="summary" prop:value=move || summary.get()
                on:input=move |ev| summary.set(event_target_value(&ev))/>
            <div class="row">
                <button type="submit" disabled=move || !ready.get()>"Save"</button>
                <a href=move || Route::Page(shown.get()).href()>"Cancel"</a>
            </div>
            {move || error.get().map(error_view)}
        </form>
    }
}

/// Inserts `md` at the editor's cursor (replacing the selection) and puts the cursor after
/// it; at the end when the editor is not there.
fn insert_at_cursor(area: NodeRef<leptos::html::Textarea>, text: RwSignal<String>, md: &str) {
    let el = area.get_untracked();
    let t = text.get_untracked();
    // The selection is counted in UTF-16 units.
    let byte_at = |u16_pos: u32| {
        let mut n = 0u32;
        for (i, c) in t.char_indices() {
            if n >= u16_pos {
                return i;
            }
            n += c.len_utf16() as u32;
        }
        t.len()
    };
    let (a, b) = match &el {
        Some(e) => (
            byte_at(e.selection_start().ok().flatten().unwrap_or(u32::MAX)),
            byte_at(e.selection_end().ok().flatten().unwrap_or(u32::MAX)),
        ),
        None => (t.len(), t.len()),
    };
    let (a, b) = (a.min(b), a.max(b));
    let new = format!("{}{md}{}", &t[..a], &t[b..]);
    let cursor = t[..a].encode_utf16().count() + md.encode_utf16().count();
    text.set(new.clone());
    if let Some(e) = el {
        // The value first (the signal's effect may run later), then the cursor.
        e.set_value(&new);
        let c = cursor as u32;
        let _ = e.set_selection_range(c, c);
    }
}

#[component]
fn HistoryView(title: String) -> impl IntoView {
    let hist: Slot = RwSignal::new(None);
    let t = title.clone();
    let reload = move || load(hist, "wiki_history", json!({ "title": t }));
    reload();
    let status = RwSignal::new(String::new());
    let title2 = title.clone();
    view! {
        <h1>"History of " <a href=Route::Page(title.clone()).href()>{title.clone()}</a></h1>
        <p class="status" role="status">{move || status.get()}</p>
        {move || match hist.get() {
            None => loading(),
            Some(Err(e)) => error_view(e),
            Some(Ok(h)) if h.as_array().is_some_and(Vec::is_empty) =>
                view! { <p>"No versions yet."</p> }.into_any(),
            Some(Ok(h)) => view! {
                <ol class="history">
                    {list(&h).into_iter().map(|v| {
                        let hash = s(&v["hash"]);
                        let parent = v["parents"].get(0).map(s);
                        let t = title2.clone();
                        let diff = parent.map(|p| {
                            let r = Route::Diff(t.clone(), p, hash.clone());
                            view! { <a href=r.href() aria-label=format!("Diff of {}", short(&hash))>"diff"</a> }
                        });
                        let is_text = v["kind"] == json!("text");
                        let (rt, rh) = (t.clone(), hash.clone());
                        let reload = reload.clone();
                        view! {
                            <li>
                                <code>{short(&hash)}</code>" "
                                <span class="kind">{s(&v["kind"])}</span>
                                {version_meta(&v)}
                                {diff}
                                {is_text.then(|| view! {
                                    <button aria-label=format!("Revert to {}", short(&rh))
                                        on:click=move |_| {
                                            let (t, h) = (rt.clone(), rh.clone());
                                            let reload = reload.clone();
                                            spawn_local(async move {
                                                let f = json!({"title": t, "to": h, "summary": format!("revert to {}", short(&h)), "time": now()});
                                                match api("wiki_revert", f).await {
                                                    Ok(_) => { status.set("Reverted.".into()); reload(); }
                                                    Err(e) => status.set(e),
                                                }
                                            });
                                        }>"Revert"</button>
                                })}
                            </li>
                        }
                    }).collect_view()}
                </ol>
            }.into_any(),
        }}
    }
}

#[component]
fn DiffView(title: String, a: String, b: String) -> impl IntoView {
    let d: Slot = RwSignal::new(None);
    load(d, "wiki_diff", json!({ "title": title, "a": a, "b": b }));
    view! {
        <h1>"Changes to " <a href=Route::Page(title.clone()).href()>{title.clone()}</a></h1>
        <p class="meta">"From " <code>{short(&a)}</code> " to " <code>{short(&b)}</code>
            " · " <a href=Route::History(title.clone()).href()>"History"</a></p>
        {move || match d.get() {
            None => loading(),
            Some(Err(e)) => error_view(e),
            Some(Ok(v)) => {
                let text = s(&v["diff"]);
                if text.is_empty() {
                    return view! { <p>"The two versions are the same."</p> }.into_any();
                }
                view! {
                    <pre class="diff" aria-label="Diff">{text.lines().map(|l| {
                        let class = if l.starts_with("+++") || l.starts_with("---") { "head" }
                            else if l.starts_with('+') { "add" }
                            else if l.starts_with('-') { "del" }
                            else if l.starts_with("@@") { "hunk" }
                            else { "same" };
                        view! { <span class=class>{l.to_owned()}"\n"</span> }
                    }).collect_view()}</pre>
                }.into_any()
            }
        }}
    }
}

#[component]
fn ChangesView() -> impl IntoView {
    let c: Slot = RwSignal::new(None);
    load(c, "wiki_changes", json!({ "limit": 100 }));
    view! {
        <h1>"Recent changes"</h1>
        {move || match c.get() {
            None => loading(),
            Some(Err(e)) => error_view(e),
            Some(Ok(v)) => view! {
                <ul class="changes">{list(&v).into_iter().map(|c| {
                    let t = s(&c["title"]);
                    view! {
                        <li>
                            <a href=Route::Page(t.clone()).href()>{t.clone()}</a>" "
                            <span class="kind">{s(&c["kind"])}</span>
                            " · " {who(&c["name"], &c["author"])}
                            " · " {when(&c["time"])}
                            {(!s(&c["summary"]).is_empty()).then(|| view! { " · " <i>{s(&c["summary"])}</i> })}
                        </li>
                    }
                }).collect_view()}</ul>
            }.into_any(),
        }}
    }
}

#[component]
fn SearchView(query: String) -> impl IntoView {
    let r: Slot = RwSignal::new(None);
    load(r, "wiki_search", json!({ "query": query, "limit": 50 }));
    let q = query.clone();
    view! {
        <h1>"Search: " {query.clone()}</h1>
        {move || match r.get() {
            None => loading(),
            Some(Err(e)) => error_view(e),
            Some(Ok(v)) => {
                let hits = list(&v);
                let t = q.trim().to_owned();
                view! {
                    <p class="meta">{format!("{} page(s) found.", hits.len())}
                        {(!t.is_empty()).then(|| view! {
                            " " <a href=Route::Page(t.clone()).href()>{format!("Open or create the page “{t}”")}</a>
                        })}
                    </p>
                    <ul class="hits">{hits.into_iter().map(|h| {
                        let t = s(&h["title"]);
                        let href = Route::Page(t.clone()).href();
                        view! { <li><a href=href>{t}</a></li> }
                    }).collect_view()}</ul>
                }.into_any()
            }
        }}
    }
}

#[component]
fn PagesView() -> impl IntoView {
    let r: Slot = RwSignal::new(None);
    load(r, "wiki_list", json!({}));
    // A large wiki's list is shown in part until asked: ten thousand list items take the
    // browser a long time to lay out, and as long to take down when the user moves on.
    let all = RwSignal::new(false);
    view! {
        <h1>"All pages"</h1>
        {move || match r.get() {
            None => loading(),
            Some(Err(e)) => error_view(e),
            Some(Ok(v)) => {
                let pages = list(&v);
                let total = pages.len();
                let shown = if all.get() { total } else { total.min(PAGES_SHOWN) };
                view! {
                <p class="meta">{format!("{total} page(s).")}
                    {(shown < total).then(|| view! {
                        {format!(" The first {shown} are listed; search to find the others, or ")}
                        <button type="button" on:click=move |_| all.set(true)>{format!("Show all {total}")}</button>
                    })}
                </p>
                <ul class="pages">{pages.into_iter().take(shown).map(|p| {
                    let t = s(&p["title"]);
                    let state = s(&p["state"]);
                    let badge = (state != "ok").then(|| view! { " " <span class="kind">{state.clone()}</span> });
                    let href = Route::Page(t.clone()).href();
                    view! { <li><a href=href>{t}</a>{badge}</li> }
                }).collect_view()}</ul>
            }.into_any()
            }
        }}
    }
}

/// Pages listed by "All pages" until the user asks for all of them.
const PAGES_SHOWN: usize = 500;

#[component]
fn PeopleView() -> impl IntoView {
    let r: Slot = RwSignal::new(None);
    let reload = move || load(r, "wiki_people", json!({}));
    reload();
    let name = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    let set_name = move |ev: SubmitEvent| {
        ev.prevent_default();
        let n = name.get_untracked();
        spawn_local(async move {
            match api("wiki_set_name", json!({ "name": n, "time": now() })).await {
                Ok(_) => {
                    status.set("Name saved.".into());
                    reload();
                }
                Err(e) => status.set(e),
            }
        });
    };
    view! {
        <h1>"People"</h1>
        <form class="row" on:submit=set_name>
            <label for="display-name">"Your display name"</label>
            <input id="display-name" on:input=move |ev| name.set(event_target_value(&ev))/>
            <button type="submit">"Set name"</button>
        </form>
        <p class="status" role="status">{move || status.get()}</p>
        {move || match r.get() {
            None => loading(),
            Some(Err(e)) => error_view(e),
            Some(Ok(v)) => view! {
                <ul class="people">{list(&v).into_iter().map(|p| {
                    let key = s(&p["key"]);
                    let me = p["me"] == json!(true);
                    let blocked = p["blocked"] == json!(true);
                    let label = who(&p["name"], &p["key"]);
                    let (op, text) = if blocked { ("wiki_unblock", "Unblock") } else { ("wiki_block", "Block") };
                    let k = key.clone();
                    view! {
                        <li>
                            <span title=key.clone()>{label.clone()}</span>
                            {me.then_some(" (you)")}
                            {blocked.then(|| view! { " " <span class="kind">"blocked"</span> })}
                            {(!me).then(|| view! {
                                " " <button aria-label=format!("{text} {label}") on:click=move |_| {
                                    let k = k.clone();
                                    spawn_local(async move {
                                        match api(op, json!({ "author": k })).await {
                                            Ok(_) => reload(),
                                            Err(e) => status.set(e),
                                        }
                                    });
                                }>{text}</button>
                            })}
                        </li>
                    }
                }).collect_view()}</ul>
            }.into_any(),
        }}
    }
}
