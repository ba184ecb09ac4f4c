import Checkpoints
import Foundation
import Llama
import ModelFormats
import TensorCore

/// A calibration method run layer by layer (GPTQ, AWQ): it changes each layer using the layer's captured inputs and
/// hands the finished layer to its caller, who keeps it in the output's form.
public protocol LayerwiseMethod: AnyObject {
    /// Progress label ("gptq", "awq").
    var label: String { get }
    /// What the result depends on besides the calibration windows (source, options), for the resume fingerprint.
    var fingerprint: String { get }
    /// Calibrates layer l in place. `pass` stands before layer l; the method runs it to capture inputs. If it advances
    /// the pass (AWQ: the next inputs come from the unchanged layer), that is kept; otherwise the runner advances the
    /// pass with the changed layer.
    func process(_ l: Int, _ L: inout LlamaWeights.Layer, pass: LayerwisePass) throws
    /// The finished layer l as a resume state file.
    func record(_ l: Int) -> ResumeState.Record
    /// Layer l as an earlier run finished it, from its state file.
    func restore(_ l: Int, from saved: ResumeState.Saved) throws
    /// Layer l is finished (processed or restored): hand it on and forget it.
    func finish(_ l: Int) throws
    /// Where the wall time goes (nil: not measured); the runner adds its own phases under the method's label.
    var times: PhaseTimes? { get }
    /// Whether `process` advances the pass before it is done (AWQ): the previous layer's residual streams are then
    /// saved before it starts, not beside it (the pass would copy every window still being written).
    var advancesFirst: Bool { get }
    /// Whether the method carries residual streams of its own beside the pass's (GPTAQ: the full-precision model's),
    /// one per window, saved with the pass's in the resume state.
    var carriesStreams: Bool { get }
    /// The carried streams before the layer the pass enters next.
    var carriedStreams: [[Float]] { get }
    /// Continues from carried streams saved before `layer` (a resumed run).
    func resumeCarried(_ streams: [[Float]], layer: Int, forward: LlamaForward)
}

extension LayerwiseMethod {
    public var carriesStreams: Bool { false }
    public var carriedStreams: [[Float]] { [] }
    public func resumeCarried(_ streams: [[Float]], layer: Int, forward: LlamaForward) {}
}

/// The one layer-wise calibration loop: calibration windows → embeddings → for each decoder layer, the method
/// captures the inputs it needs and changes the layer, and the changed layer makes the next layer's inputs. Resume
/// state (per finished layer, with the residual streams after it), the fingerprint and progress live here.
public enum LayerwiseCalibration {
    public static func run(_ forward: LlamaForward, windows: [[Int32]], method: LayerwiseMethod, statePath: String?, resume: Bool,
                           progress: ProgressCallback? = nil) throws {
        let n = forward.w.config.numLayers
        let fingerprint = method.fingerprint + "|windows \(ResumeState.digest(windows))"
        let state = try statePath.map { try ResumeState(output: $0, fingerprint: fingerprint, resume: resume) }
        let first = state?.done ?? 0
        let times = method.times
        let label = method.label
        for l in 0..<first {
            try method.restore(l, from: try state!.load("layer-\(l)"))
            try times.time("\(label) output") { try method.finish(l) }
        }
        let pass: LayerwisePass = try times.time("\(label) embed") {
            if first > 0, let state {
                let k = windows.count
                let saved = try state.loadActivations(after: first - 1, count: method.carriesStreams ? 2 * k : k)
                if method.carriesStreams { method.resumeCarried(Array(saved[k...]), layer: first, forward: forward) }
                return LayerwisePass(forward, residuals: Array(saved[..<k]), layer: first)
            }
            return try LayerwisePass(forward, sequences: windows)
        }
        let t0 = Date()
        for l in first..<n {
            var L = try times.time("\(label) load") { try forward.w.layer(l) }
            if method.advancesFirst, let state { try times.time("\(label) state") { try state.waitForCommit() } }
            try method.process(l, &L, pass: pass)
            if pass.layer == l { times.time("\(label) forward") { pass.advance(L) } }
            if let state {
                try times.time("\(label) state") {
                    try state.save("layer-\(l)", method.record(l))
                    try state.saveActivations(pass.residuals + method.carriedStreams, after: l)
                }
            }
            try times.time("\(label) output") { try method.finish(l) }
            let el = Date().timeIntervalSince(t0)
            progress?("\(label) layer \(l) (\(Int(el))s, ETA \(Int(el / Double(l - first + 1) * Double(n - l - 1)))s)", l + 1, n)
        }
        // the last layer's state is on disk before the caller writes the output and removes the state
        if let state { try times.time("\(label) state") { try state.waitForCommit() } }
    }
}
