/* New batch job: posts the form to its own page with XHR, for an upload progress bar.
 * The server answers 201 {location} on success, or the page again with the form's errors,
 * whose fields replace ours (the chosen file is kept). Without this script the form posts normally. */
(function () {
  "use strict";

  var form = document.getElementById("job-form");
  if (!form || !window.FormData || !window.XMLHttpRequest || !window.DOMParser) return;

  var errorBox = document.getElementById("upload-error");
  var progress = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-progress-bar");
  var progressText = document.getElementById("upload-progress-text");
  var submit = document.getElementById("upload-submit");
  var dataNode = document.getElementById("model-versions");
  var versions = dataNode ? JSON.parse(dataNode.textContent) : {};

  function mb(bytes) {
    return (bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 2 : 1) + " MB";
  }

  function field(name) {
    return form.elements[name];
  }

  function fileInput() {
    return form.querySelector("input[name=file]");
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.classList.remove("d-none");
    errorBox.focus();
  }

  function clearError() {
    errorBox.classList.add("d-none");
    errorBox.textContent = "";
  }

  function setProgress(percent, text) {
    bar.style.width = percent + "%";
    bar.textContent = percent + "%";
    progress.querySelector(".progress").setAttribute("aria-valuenow", String(percent));
    progressText.textContent = text;
  }

  function busy(on) {
    submit.disabled = on;
    progress.classList.toggle("d-none", !on);
  }

  // --- hints: which versions the chosen model has, and the number field only when it is needed

  function describeModel() {
    var hint = document.getElementById("model-hint");
    var info = versions[field("model").value];
    if (!hint || !info) return;
    var parts = [];
    if (info.aliases.champion) parts.push("champion v" + info.aliases.champion);
    if (info.aliases.challenger) parts.push("challenger v" + info.aliases.challenger);
    parts.push("ready: " + info.ready.map(function (n) { return "v" + n; }).join(", "));
    if (!info.aliases.champion) parts.push("no champion yet: choose a specific version");
    hint.textContent = "Versions: " + parts.join(" · ");
  }

  function toggleNumber() {
    var wrapper = document.getElementById("number-field");
    if (wrapper) wrapper.classList.toggle("d-none", field("version").value !== "number");
  }

  function describeFile() {
    var input = fileInput();
    var chosen = document.getElementById("file-chosen");
    var file = input.files && input.files[0];
    if (chosen) chosen.textContent = file ? "Selected: " + file.name + " (" + mb(file.size) + ")" : "";
  }

  function bind() {
    field("model").addEventListener("change", describeModel);
    field("version").addEventListener("change", toggleNumber);
    fileInput().addEventListener("change", function () {
      // a new file: the error about the previous one no longer applies
      fileInput().classList.remove("is-invalid");
      form.querySelectorAll("[data-testid=file-error]").forEach(function (node) { node.remove(); });
      describeFile();
    });
    var dropzone = document.getElementById("dropzone");
    ["dragenter", "dragover"].forEach(function (name) {
      dropzone.addEventListener(name, function (event) {
        event.preventDefault();
        dropzone.classList.add("border-primary");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      dropzone.addEventListener(name, function () { dropzone.classList.remove("border-primary"); });
    });
    dropzone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        fileInput().files = event.dataTransfer.files;
        fileInput().dispatchEvent(new Event("change"));
      }
    });
    describeModel();
    toggleNumber();
    describeFile();
  }

  // --- the server's answer

  function swapFields(html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var fresh = page.getElementById("job-form-fields");
    if (!fresh) return false;
    var oldFile = fileInput();
    var current = document.getElementById("job-form-fields");
    current.replaceWith(document.adoptNode(fresh));
    var newFile = fileInput();
    oldFile.className = newFile.className;
    newFile.replaceWith(oldFile);
    bind();
    var invalid = form.querySelector(".is-invalid, [data-testid=form-error]");
    if (invalid) invalid.scrollIntoView({ block: "center" });
    return true;
  }

  function errorFrom(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (ignored) { /* an HTML error page */ }
    return "The upload failed (HTTP " + xhr.status + "). Try again, or reload the page.";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearError();
    var file = fileInput().files && fileInput().files[0];
    if (!file) {
      showError("Choose the CSV or Parquet file to score.");
      return;
    }
    var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
    if (maxBytes && file.size > maxBytes) {
      showError("The file is " + mb(file.size) + "; this portal accepts at most " + mb(maxBytes) +
        ". Split it, or ask an admin to raise MAX_UPLOAD_BYTES.");
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", window.location.pathname);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) return;
      var percent = Math.floor((e.loaded / e.total) * 100);
      setProgress(percent, mb(e.loaded) + " of " + mb(e.total) + " sent");
    };
    xhr.upload.onload = function () {
      setProgress(100, "Sent. Checking the file’s columns…");
    };
    xhr.onload = function () {
      if (xhr.status === 201) {
        var body = JSON.parse(xhr.responseText);
        progressText.textContent = "Job #" + body.id + " queued. Opening it…";
        window.location.assign(body.location || form.dataset.jobUrl.replace("{pk}", String(body.id)));
        return;
      }
      setProgress(0, "");
      busy(false);
      if (!swapFields(xhr.responseText)) showError(errorFrom(xhr));
    };
    xhr.onerror = function () {
      setProgress(0, "");
      busy(false);
      showError("The connection was lost during the upload. Check the network and try again.");
    };
    setProgress(0, "Starting…");
    busy(true);
    xhr.send(new FormData(form));
  });

  bind();
})();
