/* flask-maildelivery: the detail page of an email still on its way refreshes itself.
 *
 * The page marks itself with #md-live (data-poll-url: the email in the JSON API;
 * data-poll-seconds; data-waiting-results / data-waiting-statuses: what "still on its way"
 * means; data-signature: what the page shows, in the form of signature() below). Every few
 * seconds the script asks the API; when the email's result, a recipient's status or the
 * number of events changed, it fetches the page again and swaps in its refreshed parts
 * (the parts marked data-md-live-part). It stops once nothing is on its
 * way any more, or after three failed requests in a row. Without JavaScript the page is
 * the same, only static.
 */
(function () {
  "use strict";
  var live = document.getElementById("md-live");
  if (!live || !window.fetch || !window.DOMParser) {
    return;
  }
  var pollUrl = live.getAttribute("data-poll-url");
  var seconds = Number(live.getAttribute("data-poll-seconds")) || 5;
  var waitingResults = (live.getAttribute("data-waiting-results") || "").split(" ");
  var waitingStatuses = (live.getAttribute("data-waiting-statuses") || "").split(" ");
  var shown = live.getAttribute("data-signature");
  var failures = 0;

  function signature(email) {
    var parts = [email.result, email.status];
    email.recipients.forEach(function (r) {
      parts.push(r.id + ":" + r.status + ":" + r.events.length);
    });
    parts.push(email.other_events.length);
    return parts.join("|");
  }

  function onItsWay(email) {
    if (waitingResults.indexOf(email.result) >= 0) {
      return true;
    }
    return email.recipients.some(function (r) {
      return waitingStatuses.indexOf(r.status) >= 0;
    });
  }

  function swapParts(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-md-live-part]").forEach(function (part) {
      var name = part.getAttribute("data-md-live-part");
      var replacement = fresh.querySelector('[data-md-live-part="' + name + '"]');
      if (replacement) {
        part.replaceWith(document.importNode(replacement, true));
      }
    });
  }

  function refreshPage() {
    return fetch(window.location.href, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) {
        throw new Error("page answered " + response.status);
      }
      return response.text();
    }).then(swapParts);
  }

  function poll() {
    fetch(pollUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("API answered " + response.status);
        }
        return response.json();
      })
      .then(function (email) {
        failures = 0;
        var now = signature(email);
        var changed = now !== shown;
        shown = now;
        var again = onItsWay(email);
        return (changed ? refreshPage() : Promise.resolve()).then(function () {
          live.setAttribute("data-state", again ? "polling" : "final");
          if (again) {
            window.setTimeout(poll, seconds * 1000);
          }
        });
      })
      .catch(function () {
        failures += 1;
        if (failures < 3) {
          window.setTimeout(poll, seconds * 1000);
        } else {
          live.setAttribute("data-state", "stopped");
        }
      });
  }

  live.setAttribute("data-state", "polling");
  poll();
})();
