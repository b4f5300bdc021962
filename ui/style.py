"""The app's CSS (fixed-size cards, chips, step badges) and small HTML snippets.

Every value that comes from a dataset is passed through :func:`esc` before it reaches HTML:
captions and urls of web crawls are untrusted text.
"""

from __future__ import annotations

import base64
import html

import streamlit as st

THUMB_PX = 176  # height of the thumbnail box in the grid

LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="19" height="19" viewBox="0 0 24 24" '
    'fill="none" stroke="white" '
    'stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round">'
    '<rect x="3" y="3" width="7" height="7" rx="1.5"/><rect x="3" y="14" width="7" height="7" '
    'rx="1.5"/><rect x="14" y="3" width="7" height="7" rx="1.5"/>'
    '<circle cx="17" cy="17" r="3.2"/><path d="M19.4 19.4 22 22"/></svg>'
)
LOGO_URI = "data:image/svg+xml;base64," + base64.b64encode(LOGO_SVG.encode()).decode()

CSS = f"""
<style>
:root {{
  --ts-muted: #6b7185;
  --ts-line: #e4e6ee;
  --ts-soft: #f4f5fa;
  --ts-accent: #4f46e5;
}}
.block-container {{ padding: 2rem 2.2rem 3rem 2.2rem; max-width: 1600px; }}
.ts-i {{ font-family: "Material Symbols Rounded"; font-weight: normal; font-style: normal;
  font-size: 1.05em; line-height: 1; display: inline-block; vertical-align: -0.16em;
  letter-spacing: normal; text-transform: none; white-space: nowrap; direction: ltr;
  -webkit-font-feature-settings: "liga"; font-feature-settings: "liga"; }}
[data-testid="stSidebarHeader"] {{ display: none; }}
[data-testid="stSidebarUserContent"] {{ padding-top: 1.4rem; }}
h1, h2, h3 {{ letter-spacing: -0.01em; }}

.ts-brand {{ display: flex; align-items: center; gap: .55rem; margin: 0 0 .9rem .15rem; }}
.ts-brand-mark {{ width: 32px; height: 32px; border-radius: 9px; flex: none;
  background: url("{LOGO_URI}") center / 19px 19px no-repeat,
              linear-gradient(135deg, #6366f1, #0ea5e9); }}
.ts-brand-name {{ font-weight: 700; font-size: 1.15rem; color: #1d2035; }}
.ts-brand-tag {{ font-size: .72rem; color: var(--ts-muted); margin-top: -2px; }}

.ts-hero {{ margin: 0 0 1.1rem 0; }}
.ts-hero h1 {{ font-size: 1.85rem; margin: 0; padding: 0; }}
.ts-hero p {{ color: var(--ts-muted); margin: .25rem 0 0 0; font-size: .98rem; }}

/* ---- grid cards ---- */
[class*="st-key-card-"] {{ gap: .45rem !important;
  padding: .45rem .45rem .5rem .45rem !important; }}
[class*="st-key-card-"]:hover {{ border-color: #c7cbf5 !important;
  box-shadow: 0 2px 10px rgba(40, 44, 90, .07); }}
[class*="st-key-card-"] [data-testid="stImage"],
[class*="st-key-card-"] [data-testid="stImageContainer"],
[class*="st-key-card-"] [data-testid="stFullScreenFrame"] {{ width: 100% !important; }}
[class*="st-key-card-"] [data-testid="stImage"] img,
[class*="st-key-card-"] .ts-thumb img,
[class*="st-key-card-"] .ts-ph {{
  height: {THUMB_PX}px !important; width: 100% !important; max-width: 100% !important;
  object-fit: scale-down; background: var(--ts-soft); border-radius: 7px; display: block;
}}
[class*="st-key-card-"] [data-testid="stElementToolbar"] {{ display: none; }}
[class*="st-key-card-"] [data-testid="stMarkdownContainer"] {{ margin-bottom: 0 !important; }}
.ts-thumb {{ margin-bottom: .45rem; }}
.ts-ph {{ display: flex !important; flex-direction: column; align-items: center;
  justify-content: center; gap: .3rem; padding: .7rem; box-sizing: border-box;
  border: 1px dashed #cfd3e1; color: var(--ts-muted); font-size: .74rem; text-align: center;
  overflow: hidden; word-break: break-all; background: var(--ts-soft); border-radius: 7px; }}
.ts-ph b {{ color: #3d4257; font-size: .78rem; word-break: normal; }}
.ts-ph .ts-i {{ font-size: 1.7rem; color: #9aa0b8; }}
.ts-ph a {{ color: var(--ts-accent); text-decoration: none; }}
.ts-ph.ts-err {{ border-color: #f3b7b7; background: #fff6f6; }}
.ts-ph.ts-err .ts-i {{ color: #e06666; }}
.ts-ph-big {{ height: 320px; }}
.ts-text {{ padding: 0 .15rem; }}
.ts-cap {{ font-size: .84rem; line-height: 1.2rem; height: 2.4rem; overflow: hidden;
  display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical;
  color: #1f2333; word-break: break-word; margin-bottom: .2rem; }}
.ts-cap.ts-none {{ color: var(--ts-muted); font-style: italic; }}
.ts-meta {{ font-size: .73rem; color: var(--ts-muted); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; line-height: 1.2rem; height: 1.2rem; }}
.ts-meta code {{ font-size: .7rem; padding: .05rem .25rem; background: var(--ts-soft);
  color: #3d4257; }}
.ts-meta .ts-i {{ font-size: .95rem; margin-right: .15rem; color: #9aa0b8; }}
.ts-meta a {{ color: var(--ts-muted); text-decoration: none; }}
.ts-meta a:hover {{ color: var(--ts-accent); text-decoration: underline; }}
[class*="st-key-card-"] .stButton button {{ min-height: 1.85rem; padding: .05rem .5rem;
  font-size: .8rem; }}

/* ---- selection bar chips ---- */
[class*="st-key-selbar"] .stButton button {{ border-radius: 999px; min-height: 1.8rem;
  padding: .05rem .75rem; font-size: .8rem; background: #eef0fd; border-color: #d8dbfa;
  color: #3b36b5; }}
.ts-count {{ font-size: 1.05rem; color: #1f2333; }}
.ts-count b {{ font-size: 1.3rem; }}
.ts-count span {{ color: var(--ts-muted); font-size: .9rem; }}

/* ---- home: dataset cards ---- */
.ts-steps {{ display: flex; flex-wrap: wrap; gap: .35rem; margin: .1rem 0 .2rem 0; }}
.ts-step {{ font-size: .76rem; padding: .14rem .6rem; border-radius: 999px;
  border: 1px solid var(--ts-line); color: var(--ts-muted); background: white; }}
.ts-step.done {{ background: #e8f7ef; border-color: #b7e4c9; color: #17663f; font-weight: 600; }}
.ts-kv {{ display: grid; grid-template-columns: max-content 1fr; gap: .25rem .9rem;
  font-size: .86rem; }}
.ts-kv div:nth-child(odd) {{ color: var(--ts-muted); }}
.ts-kv code {{ font-size: .8rem; word-break: normal; overflow-wrap: anywhere; }}
.ts-reason {{ display: grid; grid-template-columns: 1fr max-content; gap: .1rem .6rem;
  font-size: .84rem; align-items: center; margin-bottom: .25rem; }}
.ts-bar {{ grid-column: 1 / span 2; height: 5px; border-radius: 3px; background: var(--ts-soft);
  overflow: hidden; }}
.ts-bar i {{ display: block; height: 100%; background: #f59e0b; border-radius: 3px; }}
.ts-empty {{ text-align: center; padding: 2.2rem 1rem 1rem 1rem; }}
.ts-empty .ts-empty-icon {{ font-size: 2.8rem; color: #8b90f0; }}
.ts-empty h3 {{ margin: .4rem 0 .2rem 0; }}
.ts-empty p {{ color: var(--ts-muted); margin: 0 auto; max-width: 34rem; }}

/* ---- detail dialog ---- */
.st-key-dlg-img, .ts-preview {{ background: var(--ts-soft); border-radius: 10px;
  padding: .8rem; align-items: center; justify-content: center; min-height: 260px; }}
.ts-preview {{ display: flex; box-sizing: border-box; }}
.ts-preview img {{ max-height: 58vh; max-width: 100%; object-fit: contain; }}
.st-key-dlg-img [data-testid="stImage"] img {{ max-height: 58vh; object-fit: contain;
  width: auto !important; max-width: 100%; }}
.st-key-dlg-img [data-testid="stImage"] {{ display: flex; justify-content: center;
  width: 100%; }}
.ts-key {{ font-size: 1.25rem; font-weight: 650; color: #1d2035; word-break: break-all; }}
.ts-key span {{ font-size: .85rem; font-weight: 400; color: var(--ts-muted); }}
.ts-caption-full {{ font-size: 1.02rem; line-height: 1.5; background: var(--ts-soft);
  border-radius: 8px; padding: .75rem .9rem; color: #1f2333; white-space: pre-wrap;
  word-break: break-word; }}
.ts-cols {{ max-height: 420px; overflow: auto; border: 1px solid var(--ts-line, #e6e8f0);
  border-radius: 8px; }}
.ts-cols table {{ width: 100%; border-collapse: collapse; font-size: .84rem; margin: 0; }}
.ts-cols th {{ position: sticky; top: 0; background: var(--ts-soft); text-align: left;
  font-weight: 600; color: var(--ts-muted); padding: .3rem .6rem; border: 0; }}
.ts-cols td {{ padding: .25rem .6rem; border: 0; border-top: 1px solid #eef0f5;
  vertical-align: top; word-break: break-word; }}
.ts-cols td.c {{ font-family: ui-monospace, monospace; font-size: .78rem; white-space: nowrap;
  color: #1d2035; }}
.ts-cols td.t {{ color: var(--ts-muted); white-space: nowrap; font-size: .75rem; }}
/* ---- search ---- */
.ts-score {{ display: inline-block; font-size: .7rem; line-height: 1rem; padding: 0 .4rem;
  margin-right: .3rem; border-radius: 999px; background: #eef0fd; color: #3b36b5;
  vertical-align: .05em; }}
.ts-score b {{ font-weight: 650; }}
.ts-score i {{ font-style: normal; opacity: .7; margin-right: .3rem; }}
[class*="st-key-acts-"] {{ flex-wrap: nowrap !important; }}
[class*="st-key-acts-"] > [data-testid="stElementContainer"] {{ flex: 1 1 0 !important;
  min-width: 0 !important; width: auto !important; }}
[class*="st-key-acts-"] .stButton button {{ padding: .05rem .3rem; gap: .2rem; }}
.ts-hint {{ font-size: .8rem; color: var(--ts-muted); margin-top: -.35rem; }}
.ts-hint code {{ font-size: .76rem; color: #3b36b5; background: #eef0fd; padding: .05rem .3rem;
  border-radius: 4px; margin: 0 .1rem; }}
.ts-qhead {{ font-size: .76rem; color: var(--ts-muted); letter-spacing: .03em;
  text-transform: uppercase; }}
.ts-qtitle {{ font-size: 1.25rem; font-weight: 650; color: #1d2035; margin: .05rem 0 .3rem 0; }}
.ts-qcap {{ font-size: .98rem; line-height: 1.45; color: #1f2333; word-break: break-word; }}
[class*="st-key-qimg"] img {{ max-height: 150px; width: auto !important; object-fit: contain;
  border-radius: 8px; background: var(--ts-soft); }}
.ts-src {{ font-size: .84rem; color: #3d4257; }}
.ts-src code {{ word-break: break-all; }}
</style>
"""


def inject() -> None:
    st.html(CSS)


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def icon(name: str) -> str:
    """A Material Symbols icon (the font Streamlit ships) as inline HTML."""
    return f'<span class="ts-i" aria-hidden="true">{esc(name)}</span>'


def empty_html(icon_name: str, title: str, body_html: str) -> str:
    """The centred icon, title and text of an empty state (``body_html`` is already safe)."""
    return (
        f'<div class="ts-empty"><div class="ts-empty-icon">{icon(icon_name)}</div>'
        f"<h3>{esc(title)}</h3><p>{body_html}</p></div>"
    )


def brand_html() -> str:
    return (
        '<div class="ts-brand"><div class="ts-brand-mark"></div><div>'
        '<div class="ts-brand-name">Tailscope</div>'
        '<div class="ts-brand-tag">image–text dataset explorer</div></div></div>'
    )


def hero(title: str, subtitle: str) -> None:
    st.markdown(
        f'<div class="ts-hero"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></div>',
        unsafe_allow_html=True,
    )


def safe_href(url: object) -> str | None:
    """The url when it is plain http(s), for use in an href; None for anything else."""
    s = str(url or "").strip()
    return s if s.lower().startswith(("http://", "https://")) else None
