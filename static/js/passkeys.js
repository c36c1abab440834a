// Passkeys (WebAuthn) in plain JS: the server sends options as JSON with base64url binaries; this turns them into
// ArrayBuffers for navigator.credentials, and the credential back into JSON. Buttons carry what they do:
//   data-passkey="register" data-options-url data-url [data-name-input]   add a passkey to your account
//   data-passkey="signin" data-options-url data-url [data-next] [data-remember-input]   sign in with one
// Errors go to the element named by data-error (role=alert).
(function () {
  "use strict";

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var message = (data.error && data.error.message) || "The request failed (" + response.status + ").";
          throw new Error(message);
        }
        return data;
      });
    });
  }

  function creationOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    (options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return options;
  }

  function requestOptions(options) {
    options.challenge = toBytes(options.challenge);
    (options.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return options;
  }

  // A credential as the server reads it: the same envelope for both ceremonies, with the ceremony's response.
  function credentialJSON(credential, response) {
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
    };
  }

  function registrationJSON(credential) {
    var response = credential.response;
    return credentialJSON(credential, {
      clientDataJSON: toText(response.clientDataJSON),
      attestationObject: toText(response.attestationObject),
      transports: response.getTransports ? response.getTransports() : [],
    });
  }

  function assertionJSON(credential) {
    var response = credential.response;
    return credentialJSON(credential, {
      clientDataJSON: toText(response.clientDataJSON),
      authenticatorData: toText(response.authenticatorData),
      signature: toText(response.signature),
      userHandle: toText(response.userHandle),
    });
  }

  function field(button, name) {
    var id = button.getAttribute(name);
    return id ? document.getElementById(id) : null;
  }

  function run(button) {
    var errorBox = field(button, "data-error");
    var show = function (message) {
      if (errorBox) {
        errorBox.textContent = message;
        errorBox.hidden = false;
      }
    };
    if (!window.PublicKeyCredential || !navigator.credentials) {
      show(button.getAttribute("data-unsupported") || "This browser cannot use passkeys.");
      return;
    }
    if (errorBox) errorBox.hidden = true;
    button.disabled = true;
    var kind = button.getAttribute("data-passkey");
    var chain = post(button.getAttribute("data-options-url")).then(function (options) {
      if (kind === "register") {
        return navigator.credentials.create({ publicKey: creationOptions(options) }).then(function (credential) {
          var name = field(button, "data-name-input");
          return post(button.getAttribute("data-url"), {
            credential: registrationJSON(credential),
            name: name ? name.value : "",
          });
        });
      }
      return navigator.credentials.get({ publicKey: requestOptions(options) }).then(function (credential) {
        var remember = field(button, "data-remember-input");
        return post(button.getAttribute("data-url"), {
          credential: assertionJSON(credential),
          next: button.getAttribute("data-next") || "",
          remember_browser: !!(remember && remember.checked),
        });
      });
    });
    chain.then(function (data) {
      window.location.assign(data.redirect || "/");
    }).catch(function (error) {
      button.disabled = false;
      var cancelled = error && (error.name === "NotAllowedError" || error.name === "AbortError");
      show(cancelled ? (button.getAttribute("data-cancelled") || "The passkey request was cancelled.") : error.message);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-passkey]") : null;
    if (button) {
      event.preventDefault();
      run(button);
    }
  });
})();
