//! Label sets of the benchmarks the paper evaluates on, as label-editor presets.

/// A named label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Menu name.
    pub name: &'static str,
    /// Class names, in the dataset's order.
    pub labels: &'static [&'static str],
}

/// All presets, in menu order.
pub const PRESETS: [Preset; 3] = [
    Preset {
        name: "PASCAL VOC (20)",
        labels: &VOC,
    },
    Preset {
        name: "PASCAL Context (59)",
        labels: &CONTEXT,
    },
    Preset {
        name: "COCO (80)",
        labels: &COCO,
    },
];

/// PASCAL VOC 2012, written as words.
const VOC: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "dining table",
    "dog",
    "horse",
    "motorbike",
    "person",
    "potted plant",
    "sheep",
    "sofa",
    "train",
    "tv monitor",
];

/// PASCAL Context's 59 classes, as the official CLIP Surgery demo lists them.
const CONTEXT: [&str; 59] = [
    "airplane",
    "bag",
    "bed",
    "bedclothes",
    "bench",
    "bicycle",
    "bird",
    "boat",
    "book",
    "bottle",
    "building",
    "bus",
    "cabinet",
    "car",
    "cat",
    "ceiling",
    "chair",
    "cloth",
    "computer",
    "cow",
    "cup",
    "curtain",
    "dog",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "horse",
    "keyboard",
    "light",
    "motorbike",
    "mountain",
    "mouse",
    "person",
    "plate",
    "platform",
    "pottedplant",
    "road",
    "rock",
    "sheep",
    "shelves",
    "sidewalk",
    "sign",
    "sky",
    "snow",
    "sofa",
    "table",
    "track",
    "train",
    "tree",
    "truck",
    "tvmonitor",
    "wall",
    "water",
    "window",
    "wood",
];

/// COCO's 80 object categories.
const COCO: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_their_dataset_sizes_and_no_duplicates() {
        for (preset, n) in PRESETS.iter().zip([20, 59, 80]) {
            assert_eq!(preset.labels.len(), n, "{}", preset.name);
            let mut sorted = preset.labels.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), n, "{} has duplicates", preset.name);
            assert!(preset.labels.iter().all(|l| !l.contains(',')));
        }
    }
}
