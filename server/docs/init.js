// Swagger UI for useremail, on the spec this server was built from.
// Kept out of index.html so that the page's Content-Security-Policy needs no
// inline script.
"use strict";

(function () {
  var unsafeMethods = { POST: true, PUT: true, PATCH: true, DELETE: true };

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (eq > 0 && parts[i].slice(0, eq) === name) {
        return decodeURIComponent(parts[i].slice(eq + 1));
      }
    }
    return "";
  }

  // The session's CSRF token: the csrftoken cookie (set again at every
  // login, also one made with "Try it out"), or the meta tag the server puts
  // in the page for a browser that was logged in when it loaded.
  function csrfToken() {
    var token = cookie("csrftoken");
    if (token) {
      return token;
    }
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayRequestDuration: true,
    // Nothing leaves this origin: no online validator badge.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // Same origin: the browser sends the session cookies by itself; writes
    // need the session's CSRF token in X-CSRFToken too.
    requestInterceptor: function (req) {
      var method = (req.method || "GET").toUpperCase();
      if (unsafeMethods[method]) {
        var token = csrfToken();
        if (token) {
          req.headers = req.headers || {};
          req.headers["X-CSRFToken"] = token;
        }
      }
      return req;
    },
  });
})();
