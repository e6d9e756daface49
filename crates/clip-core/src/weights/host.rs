//! Tensors on the host: what every weight source hands out before anything reaches a device.

/// A tensor on the host: row-major `f32` data and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Wraps data; the caller guarantees `data.len()` is the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// The transpose of a matrix; `None` for any other rank (a weight file may claim anything).
    pub fn transposed(&self) -> Option<Self> {
        let &[rows, cols] = self.shape.as_slice() else {
            return None;
        };
        let mut data = vec![0.0; self.data.len()];
        for r in 0..rows {
            for c in 0..cols {
                data[c * rows + r] = self.data[r * cols + c];
            }
        }
        Some(Self::new(vec![cols, rows], data))
    }

    /// Rows `start..end` of the outermost dimension (`None` when out of range).
    pub fn rows(&self, start: usize, end: usize) -> Option<Self> {
        let (&outer, inner) = self.shape.split_first()?;
        if start > end || end > outer {
            return None;
        }
        let inner: usize = inner.iter().product();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Some(Self::new(
            shape,
            self.data[start * inner..end * inner].to_vec(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_rows() {
        let t = HostTensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(
            t.transposed(),
            Some(HostTensor::new(vec![3, 2], vec![1., 4., 2., 5., 3., 6.]))
        );
        assert_eq!(
            t.rows(1, 2),
            Some(HostTensor::new(vec![1, 3], vec![4., 5., 6.]))
        );
        assert_eq!(t.rows(1, 3), None);
    }

    #[test]
    fn only_matrices_transpose() {
        // A weight file may claim a transposed vector or scalar: an answer, never a panic.
        assert_eq!(HostTensor::new(vec![], vec![1.0]).transposed(), None);
        assert_eq!(HostTensor::new(vec![3], vec![1.0; 3]).transposed(), None);
        assert_eq!(HostTensor::new(vec![], vec![1.0]).rows(0, 1), None);
    }
}
