"use strict";
// Exchanges the admin token for a session cookie once; the token is not kept by the page.
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    const response = await fetch("/status/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ token: field.value }),
    });
    if (response.ok) {
      window.location.replace("/");
      return;
    }
    const body = await response.json().catch(() => null);
    error.textContent = body && body.error ? body.error.message : `Sign-in failed (HTTP ${response.status})`;
  } catch (err) {
    error.textContent = `The load balancer did not answer: ${err.message}`;
  }
  field.select();
});
