import Calibration
import Foundation
import ModelFormats
import QuantKit

/// The per-layer error reports of calibrated quantization, as JSON and as one summary line.
enum ReportJSON {
    static func linears(_ rep: [GPTQPipeline.LinearReport]) -> JSONValue {
        .array(rep.map { .object([("name", .string($0.name)), ("gptq_loss", .double($0.loss)), ("damp", .double(Double($0.damp))),
                                  ("output_mse_rtn", .double($0.outputMSERTN)), ("output_mse", .double($0.outputMSE))]) })
    }

    static func awqLayers(_ rep: [AWQPipeline.LayerReport]) -> JSONValue {
        .array(rep.map { l in
            .object([("layer", .int(Int64(l.layer))), ("seconds", .double(l.seconds)), ("clipped_weights", l.clipped.map { .int(Int64($0)) } ?? .null),
                     ("scales_kept_under_gptq", l.keptUnderGPTQ.map { .bool($0) } ?? .null),
                     ("groups", .array(l.ratios.map { .object([("group", .string($0.group)), ("ratio", $0.ratio < 0 ? .null : .double(Double($0.ratio))),
                                                               ("output_mse_plain", .double($0.lossPlain)), ("output_mse", .double($0.lossBest))]) }))])
        })
    }

    static func gptqSummary(_ rep: [GPTQPipeline.LinearReport]) -> String {
        let rtn = rep.map(\.outputMSERTN).reduce(0, +), g = rep.map(\.outputMSE).reduce(0, +)
        let better = rep.filter { $0.outputMSE < $0.outputMSERTN }.count
        return String(format: "GPTQ: %ld linears; summed output MSE on the calibration inputs %.6g (round-to-nearest %.6g, %.1f%% lower); GPTQ lower on %ld of %ld",
                      rep.count, g, rtn, rtn > 0 ? 100 * (1 - g / rtn) : 0, better, rep.count)
    }

    static func awqSummary(_ rep: [AWQPipeline.LayerReport]) -> String {
        let all = rep.flatMap(\.ratios)
        let plain = all.map(\.lossPlain).reduce(0, +), best = all.map(\.lossBest).reduce(0, +)
        let declined = all.filter { $0.ratio < 0 }.count
        let clip = rep.contains { $0.clipped == nil } ? "no clip search" : "clip search: \(rep.compactMap(\.clipped).reduce(0, +)) weights clipped"
        let judged = rep.compactMap(\.keptUnderGPTQ)
        let judge = judged.isEmpty ? "" : "; GPTQ kept the scales in \(judged.filter { $0 }.count) of \(judged.count) layers"
        return String(format: "AWQ: %ld layers, %ld scale searches (%ld kept unscaled); summed block-output MSE %.6g (unscaled %.6g, %.1f%% lower); ",
                      rep.count, all.count, declined, best, plain, plain > 0 ? 100 * (1 - best / plain) : 0) + clip + judge
    }

    /// Where a calibrated run's wall time went, by phase, in seconds.
    static func phases(_ t: PhaseTimes) -> JSONValue {
        .object(t.phases.map { ($0.name, .double($0.seconds)) })
    }

    /// "time 412.3 s: gptq capture 140.2 s (34 %), …" with the phases in the order they first ran.
    static func timeSummary(seconds: Double, _ t: PhaseTimes) -> String {
        let parts = t.phases.map { String(format: "%@ %.1f s (%.0f %%)", $0.name, $0.seconds, seconds > 0 ? 100 * $0.seconds / seconds : 0) }
        return String(format: "time %.1f s", seconds) + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", "))
    }
}
