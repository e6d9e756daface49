//! Feature surgery (§3.3 of the paper): remove the features every class shares, which is what
//! makes raw CLIP maps noisy. Plus the plain similarities and CLS scores for comparison.
//!
//! All functions take L2-normalised image tokens `[N + 1, E]` (class token first) and text
//! features `[T, E]` and return `[N + 1, T]`.

use burn::tensor::{Tensor, activation};

/// Label-set mode (official `clip_feature_surgery` without redundant features).
///
/// With class weights `w = softmax(2·cls·tᵀ) / mean(softmax(…))` the official code builds
/// `feats[i, t, c] = x[i, c]·t[t, c]·w[t]`, subtracts its mean over classes and sums over
/// channels. The sum is linear, so this equals `x · (w⊙T − mean_t(w⊙T))ᵀ`: one `[N, E]×[E, T]`
/// matmul instead of an `[N, T, E]` tensor (59 classes × 1025 tokens × 512 would be 124 MB).
pub fn feature_surgery(image: Tensor<2>, text: Tensor<2>) -> Tensor<2> {
    let (weighted, redundant) = weighted_classes(&image, text);
    image.matmul((weighted - redundant).transpose())
}

/// The redundant feature label-set feature surgery removes, `mean_t(w⊙T)` `[1, E]`: a
/// token's `x · r` is the term Eq. 9 subtracts from every class (the paper's Fig. 2).
pub fn redundant_feature(image: &Tensor<2>, text: Tensor<2>) -> Tensor<2> {
    weighted_classes(image, text).1
}

/// `w⊙T` `[T, E]` (the classes weighted by the CLS token) and its mean over classes `[1, E]`.
fn weighted_classes(image: &Tensor<2>, text: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let [_, e] = image.dims();
    let cls = image.clone().slice([0..1, 0..e]); // [1, E]
    let prob = activation::softmax(cls.matmul(text.clone().transpose()) * 2.0, 1); // [1, T]
    let w = prob.clone() / prob.mean_dim(1); // [1, T]
    let weighted = text * w.transpose(); // [T, E]
    let redundant = weighted.clone().mean_dim(0); // [1, E]
    (weighted, redundant)
}

/// Single-text mode: `x · (t − r)ᵀ`, with `r` the prompt-ensembled feature of `""`
/// (what every prompt shares, whatever the object).
pub fn feature_surgery_single(
    image: Tensor<2>,
    text: Tensor<2>,
    redundant: Tensor<2>,
) -> Tensor<2> {
    image.matmul((text - redundant).transpose())
}

/// Raw CLIP: cosine similarity of each token with each text, no surgery.
pub fn raw_similarity(image: Tensor<2>, text: Tensor<2>) -> Tensor<2> {
    image.matmul(text.transpose())
}

/// Image-level class probabilities: `softmax(exp(logit_scale) · cos(cls, t))`, `[T]`.
pub fn cls_scores(image: Tensor<2>, text: Tensor<2>, logit_scale: f32) -> Tensor<1> {
    let [_, e] = image.dims();
    let cls = image.slice([0..1, 0..e]);
    let logits = cls.matmul(text.transpose()) * f64::from(logit_scale.exp());
    activation::softmax(logits, 1).squeeze_dim::<1>(0)
}
