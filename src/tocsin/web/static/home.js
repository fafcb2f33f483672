"use strict";
// Home page: log in, then the modules the user's roles open, and the user's devices.
(function () {
  const $ = (id) => document.getElementById(id);

  async function showMenu() {
    const me = await Tocsin.me();
    Tocsin.renderTopbar();
    $("login-panel").hidden = true;
    $("menu-panel").hidden = false;
    $("welcome").textContent = `${me.display_name} (${me.roles.join(", ")}), unit ${me.unit_code}`;
    const nav = $("modules");
    nav.replaceChildren();
    for (const m of Tocsin.MODULES) {
      if (!m.roles.some((r) => me.roles.includes(r))) continue;
      const a = document.createElement("a");
      a.href = m.href; a.className = "module"; a.textContent = m.title;
      a.id = "module-" + m.id;
      nav.appendChild(a);
    }
    await showSessions();
  }

  async function showSessions() {
    const rows = await Tocsin.api("GET", "/api/v1/auth/sessions");
    const body = $("sessions").querySelector("tbody");
    body.replaceChildren();
    for (const s of rows) {
      if (s.revoked_at) continue;
      const tr = document.createElement("tr");
      for (const v of [s.device_name + (s.current ? " (this device)" : ""),
                       new Date(s.created_at).toLocaleString(), new Date(s.last_seen_at).toLocaleString()]) {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      }
      const td = document.createElement("td");
      if (!s.current) {
        const b = document.createElement("button");
        b.textContent = "Log out"; b.className = "danger";
        b.onclick = async () => { await Tocsin.api("DELETE", `/api/v1/auth/sessions/${s.id}`); showSessions(); };
        td.appendChild(b);
      }
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      await Tocsin.login($("username").value, $("password").value, $("totp_code").value || null);
      const next = new URLSearchParams(location.search).get("next");
      if (next && next.startsWith("/") && !next.startsWith("//")) { location.href = next; return; }
      await showMenu();
    } catch (err) {
      if (err.code === "totp_required") { $("totp-row").hidden = false; $("totp_code").focus(); }
      $("login-error").textContent = err.message;
    }
  });

  document.addEventListener("DOMContentLoaded", async () => {
    if (Tocsin.loggedIn()) {
      try { await showMenu(); return; } catch (e) { Tocsin.forget(); }
    }
    $("login-panel").hidden = false;
    $("username").focus();
  });
})();
