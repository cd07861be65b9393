// The history page's "Revoke" button: POST {"action": "revoke"} to the memory API, then reload.
"use strict";
(function () {
  const root = document.getElementById("history");
  const button = document.getElementById("revoke");
  if (!root || !button) return;
  button.addEventListener("click", async () => {
    const reason = window.prompt("Revoke the remembered decision: later runs decide this row again. Why?", "");
    if (reason === null) return;
    const url = "/api/runs/" + encodeURIComponent(root.dataset.run) + "/rows/" + encodeURIComponent(root.dataset.row) + "/memory";
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action: "revoke", reason: reason, reviewer: root.dataset.reviewer }),
    });
    if (response.ok) {
      window.location.reload();
    } else {
      const body = await response.json().catch(() => ({}));
      const toast = document.getElementById("toast");
      toast.textContent = body.error || "revoke failed (" + response.status + ")";
    }
  });
})();
