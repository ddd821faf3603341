// Playground: list the models a virtual key may use and stream a chat
// answer through the admin app, which relays it from the gateway.
(function () {
  "use strict";
  var form = document.getElementById("playground");
  if (!form) return;
  var keyInput = document.getElementById("pg-key");
  var model = document.getElementById("pg-model");
  var message = document.getElementById("pg-message");
  var send = document.getElementById("pg-send");
  var errorBox = document.getElementById("pg-error");
  var transcript = document.getElementById("pg-transcript");

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  function errorText(resp) {
    return resp.text().then(function (t) {
      try {
        return JSON.parse(t).error.message;
      } catch (e) {
        return t || resp.statusText;
      }
    });
  }

  keyInput.addEventListener("change", function () {
    showError("");
    post("/playground/models", { key: keyInput.value }).then(function (resp) {
      if (!resp.ok) return errorText(resp).then(function (t) { throw new Error(t); });
      return resp.json();
    }).then(function (list) {
      model.textContent = "";
      (list.data || []).forEach(function (m) {
        var opt = document.createElement("option");
        opt.value = m.id;
        opt.textContent = m.id;
        model.appendChild(opt);
      });
      model.disabled = model.options.length === 0;
      if (model.disabled) showError("This key may use no models.");
    }).catch(function (e) { showError(e.message); });
  });

  function bubble(role, text) {
    var p = document.createElement("p");
    p.className = "turn " + role;
    var who = document.createElement("strong");
    who.textContent = role === "user" ? "You: " : model.value + ": ";
    var body = document.createElement("span");
    body.textContent = text;
    p.appendChild(who);
    p.appendChild(body);
    transcript.appendChild(p);
    return body;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    showError("");
    var text = message.value.trim();
    if (!text || !model.value) return;
    bubble("user", text);
    var answer = bubble("assistant", "");
    send.setAttribute("aria-busy", "true");
    send.disabled = true;
    post("/playground/chat", { key: keyInput.value, model: model.value, message: text }).then(function (resp) {
      if (!resp.ok) return errorText(resp).then(function (t) { throw new Error(t); });
      var reader = resp.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) return;
          buffer += decoder.decode(r.value, { stream: true });
          var events = buffer.split("\n\n");
          buffer = events.pop();
          events.forEach(function (ev) {
            ev.split("\n").forEach(function (line) {
              if (line.indexOf("data: ") !== 0) return;
              var data = line.slice(6);
              if (data === "[DONE]") return;
              try {
                var chunk = JSON.parse(data);
                if (chunk.error) throw new Error(chunk.error.message);
                var c = chunk.choices && chunk.choices[0];
                if (c && c.delta && c.delta.content) answer.textContent += c.delta.content;
              } catch (e) {
                showError(e.message);
              }
            });
          });
          return pump();
        });
      }
      return pump();
    }).catch(function (e) {
      showError(e.message);
    }).then(function () {
      message.value = "";
      send.removeAttribute("aria-busy");
      send.disabled = false;
      transcript.setAttribute("data-done", String(transcript.querySelectorAll(".turn.assistant").length));
    });
  });
})();
