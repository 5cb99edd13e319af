// AudioWorklet: hands the microphone's samples (mono, context rate) to the page in 128-frame blocks.
class CaptureProcessor extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("capture", CaptureProcessor);
