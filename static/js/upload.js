/* Version upload: multipart POST to the REST endpoint with a progress bar.
 * Without this script the form posts to the page itself and still works. */
(function () {
  "use strict";

  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;

  var fileInput = form.querySelector("input[name=artifact]");
  var referenceInput = form.querySelector("input[name=reference_data]");
  var dropzone = document.getElementById("dropzone");
  var chosen = document.getElementById("artifact-chosen");
  var errorBox = document.getElementById("upload-error");
  var progress = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-progress-bar");
  var progressText = document.getElementById("upload-progress-text");
  var submit = document.getElementById("upload-submit");

  function mb(bytes) {
    return (bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 2 : 1) + " MB";
  }

  function csrfToken() {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function el(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showError(message, details) {
    errorBox.replaceChildren();
    errorBox.appendChild(el("p", message)).className = "mb-0 fw-semibold";
    var keys = details && typeof details === "object" ? Object.keys(details) : [];
    if (keys.length) {
      var list = el("ul");
      list.className = "mb-0 mt-2";
      keys.forEach(function (key) {
        var value = details[key];
        var field = form.elements[key];
        if (field && field.classList) field.classList.add("is-invalid");
        var text = Array.isArray(value) ? value.join(" ") : (typeof value === "object" ? JSON.stringify(value) : String(value));
        var item = el("li");
        item.appendChild(el("strong", key.replace(/_/g, " ") + ": "));
        item.appendChild(document.createTextNode(text));
        list.appendChild(item);
      });
      errorBox.appendChild(list);
    }
    errorBox.classList.remove("d-none");
    errorBox.focus();
  }

  function clearError() {
    form.querySelectorAll(".is-invalid").forEach(function (field) { field.classList.remove("is-invalid"); });
    errorBox.classList.add("d-none");
    errorBox.replaceChildren();
  }

  function setProgress(percent, text) {
    bar.style.width = percent + "%";
    bar.textContent = percent + "%";
    progress.querySelector(".progress").setAttribute("aria-valuenow", String(percent));
    progressText.textContent = text;
  }

  function busy(on) {
    submit.disabled = on;
    progress.classList.toggle("d-none", !on && bar.style.width === "0%");
  }

  function describeChoice() {
    var file = fileInput.files && fileInput.files[0];
    chosen.textContent = file ? "Selected: " + file.name + " (" + mb(file.size) + ")" : "";
    if (file && /\.onnx$/i.test(file.name)) form.elements.format.value = "onnx";
    if (file && /\.(pkl|pickle|joblib)$/i.test(file.name)) form.elements.format.value = "pickle";
    if (file && /\.skops$/i.test(file.name)) form.elements.format.value = "skops";
  }

  // Drag and drop onto the zone fills the ordinary file input.
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
      fileInput.files = event.dataTransfer.files;
      describeChoice();
    }
  });
  fileInput.addEventListener("change", describeChoice);

  function totalBytes() {
    var total = 0;
    [fileInput, referenceInput].forEach(function (input) {
      if (input && input.files && input.files[0]) total += input.files[0].size;
    });
    return total;
  }

  function payload() {
    // Field names as the REST endpoint expects; empty optional fields are left out.
    var data = new FormData();
    new FormData(form).forEach(function (value, key) {
      if (key === "csrfmiddlewaretoken") return;
      if (value instanceof File ? !value.name : String(value).trim() === "") return;
      data.append(key, value);
    });
    return data;
  }

  function errorFrom(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.error) return body.error;
    } catch (ignored) { /* not JSON */ }
    return { message: "The upload failed (HTTP " + xhr.status + "). Try again, or use the form without JavaScript.", details: {} };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearError();
    if (!fileInput.files || !fileInput.files.length) {
      showError("Choose the model file to upload.", {});
      return;
    }
    var size = totalBytes();
    var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
    if (maxBytes && size > maxBytes) {
      showError("The files are " + mb(size) + " together; this portal accepts at most " + mb(maxBytes) +
        ". Upload a smaller reference sample, or ask an admin to raise MAX_UPLOAD_BYTES.", {});
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.apiUrl);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) return;
      var percent = Math.floor((e.loaded / e.total) * 100);
      setProgress(percent, mb(e.loaded) + " of " + mb(e.total) + " sent");
    };
    xhr.upload.onload = function () {
      setProgress(100, "Sent. Checking the file…");
    };
    xhr.onload = function () {
      if (xhr.status === 201) {
        var body = JSON.parse(xhr.responseText);
        progressText.textContent = "Registered as version " + body.number + ". Opening it…";
        window.location.assign(form.dataset.versionUrl.replace("{number}", String(body.number)));
        return;
      }
      var error = errorFrom(xhr);
      setProgress(0, "");
      busy(false);
      showError(error.message, error.details);
    };
    xhr.onerror = function () {
      setProgress(0, "");
      busy(false);
      showError("The connection was lost during the upload. Check the network and try again.", {});
    };
    setProgress(0, "Starting…");
    progress.classList.remove("d-none");
    busy(true);
    xhr.send(payload());
  });
})();
