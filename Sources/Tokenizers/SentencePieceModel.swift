import ModelFormats
import TensorCore

/// The parts of a SentencePiece `tokenizer.model` (a protobuf ModelProto) quantkit uses.
/// Decoded with a small wire-format reader: fields 1 (pieces), 2 (trainer spec) and 3 (normalizer spec).
public struct SentencePieceModel: Sendable {
    /// SentencePiece piece types (sentencepiece_model.proto).
    public enum PieceType: Int, Sendable { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    public struct Piece: Sendable, Equatable {
        public var piece: String
        public var score: Float
        public var type: PieceType
    }

    public var pieces: [Piece] = []
    /// TrainerSpec.model_type: 1 unigram, 2 bpe, 3 word, 4 char.
    public var modelType: Int = 1
    public var byteFallback = false
    public var unkId = 0, bosId = 1, eosId = 2, padId = -1
    /// NormalizerSpec.add_dummy_prefix (default true), remove_extra_whitespaces (default true).
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = true

    public static func load(path: String) throws -> SentencePieceModel {
        let m = try MappedFile(path: path)
        return try parse(m.bytes, file: path)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> SentencePieceModel {
        var model = SentencePieceModel()
        var r = ProtoReader(r: ByteReader(bytes, file: file))
        while let (field, wire) = try r.nextTag() {
            switch (field, wire) {
            case (1, 2):
                var sub = try r.message()
                var p = Piece(piece: "", score: 0, type: .normal)
                while let (f, w) = try sub.nextTag() {
                    switch (f, w) {
                    case (1, 2): p.piece = try sub.string()
                    case (2, 5): p.score = Float(bitPattern: try sub.fixed32())
                    case (3, 0):
                        let t = try sub.varint()
                        guard let pt = PieceType(rawValue: Int(truncatingIfNeeded: t)) else {
                            throw QKError(file: file, "piece \(model.pieces.count): unknown piece type \(t)")
                        }
                        p.type = pt
                    default: try sub.skip(w)
                    }
                }
                model.pieces.append(p)
            case (2, 2):
                var sub = try r.message()
                while let (f, w) = try sub.nextTag() {
                    switch (f, w) {
                    case (3, 0): model.modelType = Int(truncatingIfNeeded: try sub.varint())
                    case (35, 0): model.byteFallback = try sub.varint() != 0
                    case (40, 0): model.unkId = Int(Int32(truncatingIfNeeded: try sub.varint()))
                    case (41, 0): model.bosId = Int(Int32(truncatingIfNeeded: try sub.varint()))
                    case (42, 0): model.eosId = Int(Int32(truncatingIfNeeded: try sub.varint()))
                    case (43, 0): model.padId = Int(Int32(truncatingIfNeeded: try sub.varint()))
                    default: try sub.skip(w)
                    }
                }
            case (3, 2):
                var sub = try r.message()
                while let (f, w) = try sub.nextTag() {
                    switch (f, w) {
                    case (3, 0): model.addDummyPrefix = try sub.varint() != 0
                    case (4, 0): model.removeExtraWhitespaces = try sub.varint() != 0
                    default: try sub.skip(w)
                    }
                }
            default:
                try r.skip(wire)
            }
        }
        if model.pieces.isEmpty { throw QKError(file: file, "no pieces: not a SentencePiece model") }
        return model
    }
}

/// Protobuf wire-format reader (varint, fixed32/64, length-delimited), bounds-checked.
struct ProtoReader {
    var r: ByteReader

    mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try r.u8("varint")
            if shift >= 64 { throw QKError(file: r.file, "varint longer than 10 bytes at offset \(r.offset)") }
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
    }

    mutating func nextTag() throws -> (Int, Int)? {
        if r.remaining == 0 { return nil }
        let t = try varint()
        let field = Int(t >> 3)
        if field == 0 { throw QKError(file: r.file, "protobuf field number 0 at offset \(r.offset)") }
        return (field, Int(t & 7))
    }

    mutating func fixed32() throws -> UInt32 { try r.u32("fixed32") }

    mutating func bytes() throws -> UnsafeRawBufferPointer {
        let n = try varint()
        guard n <= UInt64(r.remaining) else { throw QKError(file: r.file, "protobuf field of \(n) bytes runs past the end at offset \(r.offset)") }
        return try r.raw(Int(n), "protobuf field")
    }

    mutating func string() throws -> String {
        let b = try bytes()
        guard let s = String(validating: b, as: UTF8.self) else { throw QKError(file: r.file, "piece text is not UTF-8 at offset \(r.offset)") }
        return s
    }

    mutating func message() throws -> ProtoReader { ProtoReader(r: ByteReader(try bytes(), file: r.file)) }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try r.u64("fixed64")
        case 2: _ = try bytes()
        case 5: _ = try r.u32("fixed32")
        default: throw QKError(file: r.file, "unsupported protobuf wire type \(wire) at offset \(r.offset)")
        }
    }
}
