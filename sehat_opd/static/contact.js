/* Contact form: solve the proof of work of the security check, so that a
   visitor with JavaScript does not have to read the image.
   The server's challenge is in #captcha[data-token]; the work is to find a
   counter such that SHA-256("<token>:<counter>") starts with data-bits zero
   bits (see captcha.py). Without JavaScript the image is typed instead. */
(function () {
  'use strict';
  var K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2];
  var W = new Int32Array(64);

  /* SHA-256 of an ASCII string; returns the first 32-bit word and the
     second (enough to count up to 64 leading zero bits). */
  function sha256(text) {
    var length = text.length, i, j;
    var words = new Int32Array(((length + 9 + 63) >> 6) << 4);
    for (i = 0; i < length; i++) {
      words[i >> 2] |= (text.charCodeAt(i) & 0xff) << (24 - (i & 3) * 8);
    }
    words[length >> 2] |= 0x80 << (24 - (length & 3) * 8);
    words[words.length - 1] = length * 8;
    var h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a,
      h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
    for (j = 0; j < words.length; j += 16) {
      var a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7, t1, t2, x, y;
      for (i = 0; i < 64; i++) {
        if (i < 16) {
          W[i] = words[j + i];
        } else {
          x = W[i - 15]; y = W[i - 2];
          W[i] = (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
            W[i - 7] + (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)) +
            W[i - 16] | 0;
        }
        t1 = h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
          ((e & f) ^ (~e & g)) + K[i] + W[i] | 0;
        t2 = (((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
          ((a & b) ^ (a & c) ^ (b & c)) | 0;
        h = g; g = f; f = e; e = d + t1 | 0; d = c; c = b; b = a; a = t1 + t2 | 0;
      }
      h0 = h0 + a | 0; h1 = h1 + b | 0; h2 = h2 + c | 0; h3 = h3 + d | 0;
      h4 = h4 + e | 0; h5 = h5 + f | 0; h6 = h6 + g | 0; h7 = h7 + h | 0;
    }
    return [h0, h1];
  }

  function zeroBits(words) {
    var count = 0, k, word;
    for (k = 0; k < words.length; k++) {
      word = words[k] >>> 0;
      if (word === 0) { count += 32; continue; }
      return count + Math.clz32(word);
    }
    return count;
  }

  var box = document.getElementById('captcha');
  if (!box) { return; }
  var token = box.getAttribute('data-token');
  var bits = parseInt(box.getAttribute('data-bits'), 10);
  var nonce = document.getElementById('captcha_nonce');
  var image = document.getElementById('captcha-image');
  var auto = document.getElementById('captcha-auto');
  var send = document.getElementById('contact-send');
  var prefix = token + ':';
  var counter = 0;
  var started = Date.now();

  image.hidden = true;
  auto.hidden = false;
  send.disabled = true;

  function fallBack() {
    /* too slow (an old phone): let the visitor type the image instead */
    image.hidden = false;
    auto.hidden = true;
    send.disabled = false;
  }

  function work() {
    var end = counter + 20000;
    for (; counter < end; counter++) {
      if (zeroBits(sha256(prefix + counter)) >= bits) {
        nonce.value = String(counter);
        auto.textContent = auto.getAttribute('data-done');
        send.disabled = false;
        return;
      }
    }
    if (Date.now() - started > 60000) {
      fallBack();
      return;
    }
    window.setTimeout(work, 0);
  }
  window.setTimeout(work, 0);
})();
