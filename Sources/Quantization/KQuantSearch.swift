/// The scale searches behind the K-quants and the importance-weighted legacy types: ports of ggml-quants.c's
/// make_qx_quants, make_q3_quants, make_qkx2_quants, make_qkx3_quants and make_qp_quants. Float operations
/// keep the reference's order and association (a*b*c is (a*b)*c; sums run left to right): the output must be
/// byte-identical to llama-quantize's.
enum KQuantSearch {
    static let groupMaxEps: Float = 1e-15

    /// Tests set this to run the scalar reference searches instead of the lane-parallel ones.
    nonisolated(unsafe) static var scalarReference = false

    /// make_qx_quants' 18 trial scales (steps −9…9 but 0), all computed at once: one lane per step, each lane summing
    /// over i in the reference's order (so every lane's sums are the scalar ones, bit for bit), then the steps are
    /// compared in the reference's order. Lanes padded to 20 so the per-i loop vectorizes.
    static func refineQxScale(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              _ L: UnsafeMutablePointer<Int8>, vmax: Float, scale scale0: Float, best best0: Float) -> Float {
        let lanes = 20, fnmax = Float(nmax)
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * lanes) { buf in
            let iscale = buf.baseAddress!, sumlx = iscale + lanes, suml2 = sumlx + lanes  // [lanes] each
            for k in 0..<lanes {
                let step = k < 9 ? k - 9 : k - 8  // −9 … −1, 1 … 9, then two unused lanes (10, 11)
                iscale[k] = -(fnmax + 0.1 * Float(step)) / vmax
                sumlx[k] = 0; suml2[k] = 0
            }
            // Float(clamp(nearest_int(v))) computed in floats: clamping to integers before rounding gives the same
            // value, and (v + 1.5·2²³) − 1.5·2²³ is v rounded half to even, as nearest_int rounds
            let lo = Float(-nmax), hi = Float(nmax - 1), magic: Float = 12_582_912
            for i in 0..<n {
                let xi = x[i], wi = w[i], wx = wi * xi
                for k in 0..<lanes {
                    let fl = (max(lo, min(hi, iscale[k] * xi)) + magic) - magic
                    sumlx[k] += wx * fl
                    suml2[k] += wi * fl * fl
                }
            }
            var scale = scale0, best = best0, chosen = -1
            for k in 0..<18 where suml2[k] > 0 && sumlx[k] * sumlx[k] > best * suml2[k] {
                scale = sumlx[k] / suml2[k]
                best = scale * sumlx[k]
                chosen = k
            }
            if chosen >= 0 {
                for i in 0..<n {
                    let l = Int(nearestInt(iscale[chosen] * x[i]))
                    L[i] = Int8(truncatingIfNeeded: nmax + max(-nmax, min(nmax - 1, l)))
                }
            }
            return scale
        }
    }

    /// The value of largest magnitude (the first one on ties), 0 for an all-zero group.
    @inline(__always) static func signedMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var vmax: Float = 0, amax: Float = 0
        for i in 0..<n {
            let ax = abs(x[i])
            if ax > amax { amax = ax; vmax = x[i] }
        }
        return vmax
    }

    /// Symmetric: L[i] in [0, 2·nmax), x ≈ scale·(L − nmax). Weights `qw`, else by `rmseType`.
    static func makeQxQuants(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>,
                             rmseType rt: Int, qw: UnsafePointer<Float>?) -> Float {
        let vmax = signedMax(x, n)
        if abs(vmax) < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let fnmax = Float(nmax)
        var iscale = -fnmax / vmax
        if rt == 0 {
            for i in 0..<n {
                let l = Int(nearestInt(iscale * x[i]))
                L[i] = Int8(truncatingIfNeeded: nmax + max(-nmax, min(nmax - 1, l)))
            }
            return 1 / iscale
        }
        var rmseType = rt
        var returnEarly = false
        if rmseType < 0 { rmseType = -rmseType; returnEarly = true }
        // the weights are a pure function of x: computed once (n ≤ 32 everywhere ggml calls this)
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { wb in
        let wbuf = wb.baseAddress!
        for i in 0..<n {
            if let qw { wbuf[i] = qw[i]; continue }
            switch rmseType {
            case 1: wbuf[i] = x[i] * x[i]
            case 2: wbuf[i] = 1
            case 3: wbuf[i] = abs(x[i])
            default: wbuf[i] = abs(x[i]).squareRoot()
            }
        }
        @inline(__always) func weight(_ i: Int) -> Float { wbuf[i] }
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            var l = Int(nearestInt(iscale * x[i]))
            l = max(-nmax, min(nmax - 1, l))
            L[i] = Int8(truncatingIfNeeded: l + nmax)
            let w = weight(i), fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
        if returnEarly { return suml2 > 0 ? 0.5 * (scale + 1 / iscale) : 1 / iscale }
        var best = scale * sumlx
        if !scalarReference {
            return refineQxScale(n, nmax, x, wbuf, L, vmax: vmax, scale: scale, best: best)
        }
        for step in -9...9 where step != 0 {
            iscale = -(fnmax + 0.1 * Float(step)) / vmax
            sumlx = 0; suml2 = 0
            for i in 0..<n {
                var l = Int(nearestInt(iscale * x[i]))
                l = max(-nmax, min(nmax - 1, l))
                let w = weight(i), fl = Float(l)
                sumlx += w * x[i] * fl
                suml2 += w * fl * fl
            }
            if suml2 > 0 && sumlx * sumlx > best * suml2 {
                for i in 0..<n {
                    let l = Int(nearestInt(iscale * x[i]))
                    L[i] = Int8(truncatingIfNeeded: nmax + max(-nmax, min(nmax - 1, l)))
                }
                scale = sumlx / suml2
                best = scale * sumlx
            }
        }
        return scale
        }
    }

    /// Q3_K's symmetric search with x² weights and coordinate descent.
    static func makeQ3Quants(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>, doRmse: Bool) -> Float {
        let vmax = signedMax(x, n)
        if abs(vmax) < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let iscale = -Float(nmax) / vmax
        if doRmse {
            var sumlx: Float = 0, suml2: Float = 0
            for i in 0..<n {
                var l = Int(nearestInt(iscale * x[i]))
                l = max(-nmax, min(nmax - 1, l))
                L[i] = Int8(truncatingIfNeeded: l)
                let w = x[i] * x[i], fl = Float(l)
                sumlx += w * x[i] * fl
                suml2 += w * fl * fl
            }
            for _ in 0..<5 {
                var changed = 0
                for i in 0..<n {
                    let w = x[i] * x[i]
                    let li = Float(L[i])
                    var slx = sumlx - w * x[i] * li
                    if slx > 0 {
                        var sl2 = suml2 - w * li * li
                        var newL = Int(nearestInt(x[i] * sl2 / slx))
                        newL = max(-nmax, min(nmax - 1, newL))
                        if newL != Int(L[i]) {
                            let fn = Float(newL)
                            slx += w * x[i] * fn
                            sl2 += w * fn * fn
                            if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                                L[i] = Int8(truncatingIfNeeded: newL); sumlx = slx; suml2 = sl2
                                changed += 1
                            }
                        }
                    }
                }
                if changed == 0 { break }
            }
            for i in 0..<n { L[i] = L[i] &+ Int8(truncatingIfNeeded: nmax) }
            return suml2 > 0 ? sumlx / suml2 : 0
        }
        for i in 0..<n {
            var l = Int(nearestInt(iscale * x[i]))
            l = max(-nmax, min(nmax - 1, l))
            L[i] = Int8(truncatingIfNeeded: l + nmax)
        }
        return 1 / iscale
    }

    /// Where make_qkx2/3_quants' step search starts: the range, the weight sums, the min-max fit (L written) and its
    /// error; `finished` when the search has nothing to do (flat group, or no steps) and `scale`/`vmin` are final.
    struct QkxStart {
        var vmin: Float, vmax: Float, sumW: Float, sumX: Float, scale: Float, bestError: Float
        var finished: Bool
    }

    static func qkxStart(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>?,
                         _ L: UnsafeMutablePointer<UInt8>, nstep: Int, useMad: Bool, qkx3: Bool) -> QkxStart {
        @inline(__always) func w(_ i: Int) -> Float { weights.map { $0[i] } ?? x[i] * x[i] }
        var vmin = x[0], vmax = x[0]
        var sumW = w(0)
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < vmin { vmin = x[i] }
            if x[i] > vmax { vmax = x[i] }
            let wi = w(i)
            sumW += wi
            sumX += wi * x[i]
        }
        if vmin > 0 { vmin = 0 }
        if qkx3 ? (vmax <= vmin) : (vmax == vmin) {
            for i in 0..<n { L[i] = 0 }
            return QkxStart(vmin: vmin, vmax: vmax, sumW: sumW, sumX: sumX, scale: 0, bestError: 0, finished: true)
        }
        let iscale = Float(nmax) / (vmax - vmin)
        let scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = Int(nearestInt(iscale * (x[i] - vmin)))
            L[i] = UInt8(truncatingIfNeeded: max(0, min(nmax, l)))
            var diff = scale * Float(L[i]) + vmin - x[i]
            diff = useMad ? abs(diff) : diff * diff
            bestError += w(i) * diff
        }
        return QkxStart(vmin: vmin, vmax: vmax, sumW: sumW, sumX: sumX, scale: scale, bestError: bestError, finished: nstep < 1)
    }

    /// Asymmetric (scale, min ≤ 0) search; `weights` nil means x² (make_qkx3_quants) — make_qkx2_quants always passes them.
    /// Returns the scale and sets `theMin` to −min.
    static func makeQkxQuants(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>?,
                              _ L: UnsafeMutablePointer<UInt8>, _ theMin: inout Float, _ Laux: UnsafeMutablePointer<UInt8>,
                              rmin: Float, rdelta: Float, nstep: Int, useMad: Bool, qkx3: Bool) -> Float {
        @inline(__always) func w(_ i: Int) -> Float { weights.map { $0[i] } ?? x[i] * x[i] }
        let start = qkxStart(n, nmax, x, weights, L, nstep: nstep, useMad: useMad, qkx3: qkx3)
        var vmin = start.vmin, scale = start.scale, bestError = start.bestError
        let vmax = start.vmax, sumW = start.sumW, sumX = start.sumX, fnmax = Float(nmax)
        if start.finished {
            theMin = -vmin
            return scale
        }
        var iscale: Float
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + fnmax) / (vmax - vmin)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                var l = Int(nearestInt(iscale * (x[i] - vmin)))
                l = max(0, min(nmax, l))
                Laux[i] = UInt8(truncatingIfNeeded: l)
                let wi = w(i), fl = Float(l)
                sumL += wi * fl
                sumL2 += wi * fl * fl
                sumXL += wi * fl * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            if D > 0 {
                var thisScale = (sumW * sumXL - sumX * sumL) / D
                var thisMin = (sumL2 * sumX - sumL * sumXL) / D
                if thisMin > 0 {
                    thisMin = 0
                    thisScale = sumXL / sumL2
                }
                var cur: Float = 0
                for i in 0..<n {
                    var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
                    diff = useMad ? abs(diff) : diff * diff
                    cur += w(i) * diff
                }
                if cur < bestError {
                    for i in 0..<n { L[i] = Laux[i] }
                    bestError = cur
                    scale = thisScale
                    vmin = thisMin
                }
            }
        }
        theMin = -vmin
        return scale
    }

    /// `makeQkxQuants` for `groups` consecutive groups of `n` values at once (the sub-blocks of a K-quant super-block,
    /// which are searched independently): the groups are lanes that run the same steps in lockstep, each keeping its own
    /// min, scale and best error, each summing over i in the reference's order — so every group's result is the
    /// scalar one, bit for bit. x, weights, L: [groups × n]; scales, mins: [groups] (mins gets −min, as `theMin`).
    static func makeQkxQuantsGroups(_ groups: Int, _ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                                    _ L: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>,
                                    rmin: Float, rdelta: Float, nstep: Int, useMad: Bool, qkx3: Bool) {
        if scalarReference {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n) { aux in
                for g in 0..<groups {
                    scales[g] = makeQkxQuants(n, nmax, x + g * n, weights + g * n, L + g * n, &mins[g], aux.baseAddress!,
                                              rmin: rmin, rdelta: rdelta, nstep: nstep, useMad: useMad, qkx3: qkx3)
                }
            }
            return
        }
        let G = groups, fnmax = Float(nmax), magic: Float = 12_582_912
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * n * G + 15 * G) { buf in
            // transposed [n × G]: values, weights, this step's levels, the best levels so far
            let xt = buf.baseAddress!, wt = xt + n * G, laux = wt + n * G, lbest = laux + n * G
            // [G] each: the search state, then this step's sums and fit
            let vmin = lbest + n * G, vmax = vmin + G, sumW = vmax + G, sumX = sumW + G, best = sumX + G, scale = best + G
            let active = scale + G, sumL = active + G, sumL2 = sumL + G, sumXL = sumL2 + G, tScale = sumXL + G, tMin = tScale + G
            let fitted = tMin + G, cur = fitted + G, take = cur + G  // 1 where D > 0; the step's weighted error; 1 where taken
            for g in 0..<G {
                let st = qkxStart(n, nmax, x + g * n, weights + g * n, L + g * n, nstep: nstep, useMad: useMad, qkx3: qkx3)
                vmin[g] = st.vmin; vmax[g] = st.vmax; sumW[g] = st.sumW; sumX[g] = st.sumX
                best[g] = st.bestError; scale[g] = st.scale; active[g] = st.finished ? 0 : 1
                for i in 0..<n {
                    xt[i * G + g] = x[g * n + i]; wt[i * G + g] = weights[g * n + i]; lbest[i * G + g] = Float(L[g * n + i])
                }
            }
            if nstep >= 1 {
                for step in 0...nstep {
                    let r = rmin + rdelta * Float(step) + fnmax
                    for g in 0..<G { sumL[g] = 0; sumL2[g] = 0; sumXL[g] = 0; tScale[g] = r / (vmax[g] - vmin[g]) }  // iscale
                    // levels Float(clamp(nearest_int(iscale·(x − min)), 0, nmax)) in floats (see refineQxScale)
                    for i in 0..<n {
                        let xi = xt + i * G, wi = wt + i * G, li = laux + i * G
                        for g in 0..<G {
                            let fl = (max(0, min(fnmax, tScale[g] * (xi[g] - vmin[g]))) + magic) - magic
                            li[g] = fl
                            sumL[g] += wi[g] * fl
                            sumL2[g] += wi[g] * fl * fl
                            sumXL[g] += wi[g] * fl * xi[g]
                        }
                    }
                    for g in 0..<G {
                        let D = sumW[g] * sumL2[g] - sumL[g] * sumL[g]
                        var ts = (sumW[g] * sumXL[g] - sumX[g] * sumL[g]) / D
                        var tm = (sumL2[g] * sumX[g] - sumL[g] * sumXL[g]) / D
                        if tm > 0 { tm = 0; ts = sumXL[g] / sumL2[g] }
                        tScale[g] = ts; tMin[g] = tm
                        fitted[g] = D > 0 ? 1 : 0
                        cur[g] = 0
                    }
                    for i in 0..<n {
                        let xi = xt + i * G, wi = wt + i * G, li = laux + i * G
                        for g in 0..<G {
                            let diff = tScale[g] * li[g] + tMin[g] - xi[g]
                            cur[g] += wi[g] * (useMad ? abs(diff) : diff * diff)
                        }
                    }
                    for g in 0..<G {
                        let taken = active[g] != 0 && fitted[g] != 0 && cur[g] < best[g]
                        take[g] = taken ? 1 : 0
                        if taken { best[g] = cur[g]; scale[g] = tScale[g]; vmin[g] = tMin[g] }
                    }
                    for i in 0..<n {
                        let li = laux + i * G, lb = lbest + i * G
                        for g in 0..<G { lb[g] = take[g] != 0 ? li[g] : lb[g] }
                    }
                }
            }
            for g in 0..<G {
                mins[g] = -vmin[g]; scales[g] = scale[g]
                for i in 0..<n { L[g * n + i] = UInt8(truncatingIfNeeded: nearestInt(lbest[i * G + g])) }
            }
        }
    }

    /// Quantizes non-negative sub-block scales (or mins) to [0, nmax] with weights; returns the super-block scale.
    static func makeQpQuants(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<UInt8>,
                             _ qw: UnsafePointer<Float>) -> Float {
        var vmax: Float = 0
        for i in 0..<n { vmax = max(vmax, x[i]) }
        if vmax < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let fnmax = Float(nmax)
        var iscale = fnmax / vmax
        for i in 0..<n { L[i] = UInt8(truncatingIfNeeded: nearestInt(iscale * x[i])) }
        let scale = 1 / iscale
        var bestMse: Float = 0
        for i in 0..<n {
            let diff = x[i] - scale * Float(L[i])
            bestMse += qw[i] * diff * diff
        }
        for step in -4...4 where step != 0 {
            let iscaleIs = (0.1 * Float(step) + fnmax) / vmax
            let scaleIs = 1 / iscaleIs
            var mse: Float = 0
            for i in 0..<n {
                var l = Int(nearestInt(iscaleIs * x[i]))
                l = min(nmax, l)
                let diff = x[i] - scaleIs * Float(l)
                mse += qw[i] * diff * diff
            }
            if mse < bestMse { bestMse = mse; iscale = iscaleIs }
        }
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            var l = Int(nearestInt(iscale * x[i]))
            l = min(nmax, l)
            L[i] = UInt8(truncatingIfNeeded: l)
            let w = qw[i], fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = qw[i]
                let li = Float(L[i])
                var slx = sumlx - w * x[i] * li
                var sl2 = suml2 - w * li * li
                if slx > 0 && sl2 > 0 {
                    var newL = Int(nearestInt(x[i] * sl2 / slx))
                    newL = min(nmax, newL)
                    if newL != Int(L[i]) {
                        let fn = Float(newL)
                        slx += w * x[i] * fn
                        sl2 += w * fn * fn
                        if slx * slx * suml2 > sumlx * sumlx * sl2 {
                            L[i] = UInt8(truncatingIfNeeded: newL); sumlx = slx; suml2 = sl2
                            changed += 1
                        }
                    }
                }
            }
            if changed == 0 { break }
        }
        return suml2 > 0 ? sumlx / suml2 : 0
    }
}
