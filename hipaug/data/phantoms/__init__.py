"""Radiograph phantoms: a deterministic stand-in for the private data of Lin & Chung (TAAI 2019).

Lin & Chung pre-train a hip-fracture classifier on limb radiographs (plus AC-GAN samples) and
fine-tune it on pelvic radiographs from Linkou Chang Gung Memorial Hospital. Those images are
private, so this module draws physics-inspired phantoms of the same two kinds: a *limb* set
(four body parts, each normal or fractured) and an *AP pelvis* set (hip fracture or normal).
Public API: ``render_limb``, ``render_pelvic``, ``render_pair`` (one patient with and without
the fracture), ``write_dataset``, ``write_limb_dataset``, ``write_pelvic_dataset``.

Modules (lowest first): ``base`` (class names, argument checks, parameter draws, difficulty),
``solids`` (canvas, bone material, texture, tubes/ellipsoids/rings), ``drawing`` (bones, soft
tissue, the break geometry, patients), ``fracture`` (sampling of limb and hip fractures),
``limbs`` and ``pelvis`` (the scenes), ``imaging`` (the X-ray image chain), ``render`` (the batch
API), ``write`` (the dataset folder) and ``spec`` (what a profile renders).

Image formation (vectorised with numpy over chunks of images of one part)
    1. Anatomy is analytic 3-D solids in a canonical frame (cm, x right, y down), per image
       parameters. A bone is the union of components: tapered capsules ("tubes") along a centre
       line with flared ends (metaphyses), ellipsoids (heads, condyles, carpals, trochanters,
       vertebral pedicles), lens-shaped plates (iliac wings) and tubes along an ellipse (iliac
       crest, pelvic brim, obturator rings, acetabular roof). For a ray at distance d from a
       capsule's axis the chord is exactly ``2*sqrt(R**2 - d**2)``; an ellipsoid gives
       ``2c*sqrt(1 - (u/a)**2 - (v/b)**2)``. Every component has an outer chord and an inner
       chord (radius minus the cortical thickness); the union takes the element-wise maximum of
       each, so the dense cortical shell shows only on the bone's silhouette and a medullary
       canal runs between two bright cortices ("tram lines"). Towards the ends the cortex thins
       and the inner volume becomes cancellous bone, modulated by band-limited trabecular noise
       (a constant 512x512 tile, spectrum defined in cm: ~2 mm trabeculae stretched along y plus
       ~1.5 cm density blotches, so coarse pixels average it away like a real detector).
    2. Line integral ``P = sum(mu_i * chord_i)`` with *differential* coefficients (a bone
       replaces the soft tissue it occupies). Two beam qualities: extremities at low kVp (bone
       contrast high), the pelvis at ~75 kV. Soft tissue = fat shell over muscle (evaluated on a
       half-resolution grid: it is smooth); bowel gas pockets and sacral foramina subtract.
    3. Pose: the canonical line integral is resampled (bilinear) into the detector frame with a
       random rotation, shift, zoom and mirror (laterality; the lead marker agrees with it).
    4. Detector and display: burned-in lead marker (``L``/``R`` from a 5x7 bitmap font) inside the
       field, heel-effect gradient, collimation (blocked primary outside a slightly rotated
       rectangle, shown white as unexposed film), Beer-Lambert primary ``exp(-P)``, scatter
       (``spr * blur(primary)``), quantum noise (Poisson approximated by ``I + sqrt(I/N0) z``),
       detector blur, log detection ``D = -log(I)``, digital processing (large-scale dynamic
       range compression and unsharp-mask edge enhancement) and a film-like sigmoid window set
       from the image histogram inside the field, with contrast/brightness jitter. Convention as
       on film/PACS: high attenuation is white (bone bright, air dark).

Parts and pathology
    Limbs (``LIMB_PARTS``): ``forearm`` (AP: distal humerus, radius and ulna, carpals),
    ``hand_wrist`` (PA: distal radius/ulna, 8 carpals, 5 metacarpals, 14 phalanges, sesamoids),
    ``knee`` (AP: femoral condyles and notch, patella, tibial plateau with spines, fibular
    head), ``lower_leg`` (AP: tibia and fibula from knee to ankle, malleoli, talus). The
    fractured bone is drawn per image among 2-3 candidates (e.g. radius / 5th metacarpal /
    proximal phalanx). Types (``LIMB_FRACTURE_TYPES``): transverse, oblique, comminuted (extra
    crack lines and small cortical fragments) and impacted (overlapping fragments: a dense
    sclerotic band, shortening).
    Pelvis: L4-L5 (bodies, pedicles, transverse processes), sacrum with foramina, iliac wings
    with dense crests, supra-acetabular ilium, pelvic brim, acetabular roofs and teardrops,
    pubic rami, symphysis, obturator foramina, ischial tuberosities, both proximal femora (head,
    neck, greater and lesser trochanter, shaft), bowel gas, abdomen and thighs. Hip fractures
    (``PELVIC_FRACTURE_TYPES``): subcapital and transcervical neck fractures, impacted (fragments
    driven together along the neck: sclerotic band, valgus tilt) or displaced (proximal
    migration, varus and external rotation of the shaft fragment, which foreshortens the neck
    and trochanters), and intertrochanteric fractures (line from the greater to the lesser
    trochanter, varus, often small fragments). Side is left or right at random.

    One fracture model serves every bone, so limb -> hip transfer is plausible: a cortical break
    line through a point of the bone; the distal fragment is the same bone evaluated at
    ``T^-1(p)`` (T = optional foreshortening, rotation by the angulation about the break point,
    translation by the displacement) and masked to its side of the line; the proximal fragment
    is masked to the other side. A gap leaves a lucent line; a shift towards the proximal
    fragment makes them overlap (a denser impaction band). The mildest fractures are incomplete
    cracks through part of the bone, undisplaced. A fracture also adds soft-tissue swelling
    (haematoma): a lens of extra tissue, thicker for more severe fractures.

Difficulty (``difficulty``, default 1.0, range (0, 3])
    * severity ``s = u ** (0.25 * difficulty**2)`` (``u`` uniform) drives gap width, displacement,
      angulation, impaction depth, comminution and swelling; higher difficulty = subtler;
    * pose variation (rotation, shift) and the frequency of bowel gas and collimated borders
      scale with ``0.3 + 0.5 * difficulty``;
    * quantum noise: photons per pixel ``N0 / difficulty``.

    Calibration (``python benchmarks/calibrate_difficulty.py``: 400 pelvic phantoms at 64 px,
    75/25 stratified split, plain 4-block CNN from scratch, Adam, batch 16, 20 epochs, 3 seeds),
    held-out accuracy / ROC AUC, mean [min, max]:

    ==========  =====================  =====================
    difficulty  accuracy               AUC
    ==========  =====================  =====================
    0.5         0.767 [0.750, 0.800]   0.853 [0.843, 0.863]
    1.0         0.707 [0.630, 0.750]   0.786 [0.754, 0.814]
    1.5         0.637 [0.620, 0.670]   0.728 [0.682, 0.761]
    ==========  =====================  =====================

    At the default (1.0) a from-scratch CNN is clearly above chance but far from perfect.

Randomness and reproducibility
    Every image has its own ``numpy.random.Generator`` from ``hipaug.core.seeds.numpy_rng(seed, "phantom", *key)``
    where ``key`` identifies the patient (kind, part, status, index): an image does not depend on
    the batch it is rendered in (nor on the thread count). Anatomy, fracture and imaging
    parameters come from separate, status-independent blocks of uniforms, so a patient can be
    rendered with and without the fracture (:func:`~hipaug.data.phantoms.render.render_pair`). No global random state; the
    texture tile is a fixed constant.

Class balance
    ``render_limb(labels="part+fracture")``: ``per_class`` images of every part x status (8
    classes ``<part>_fracture`` / ``<part>_normal``). ``labels="part"``: ``per_class`` per part,
    ``per_class // 2`` fractured and the rest normal. ``labels="fracture"``: ``per_class`` per
    status, parts assigned round robin (balanced when ``per_class`` is a multiple of 4, else
    the first parts get one more). ``render_pelvic``: exactly ``round(n * fracture_rate)``
    fractures, in a seeded random order. Nuisances (marker, mirror, side, exposure, gas, pose)
    are drawn independently of the label.

Metadata: one row per image (see :func:`~hipaug.data.phantoms.render.render_limb` /
:func:`~hipaug.data.phantoms.render.render_pelvic`); ``frac_x`` and
``frac_y`` give the break point in normalised image coordinates (x right, y down; NaN for
normals), useful to score Grad-CAM localisation. ``displacement`` is in mm, ``angulation`` in
degrees, ``severity`` in [0, 1]; pose, exposure and patient parameters are included.

Speed: ``python benchmarks/bench_phantoms.py`` (images/s for limb and pelvis at 64 and 128 px).
Contact sheets: ``python scripts/contact_sheet.py`` -> ``build/contact_sheet_{limb,pelvic}.png``.
"""

from hipaug.data.phantoms.base import LIMB_FRACTURE_TYPES, LIMB_PARTS, PELVIC_CLASSES, PELVIC_FRACTURE_TYPES
from hipaug.data.phantoms.render import PhantomBatch, render_limb, render_pair, render_pelvic
from hipaug.data.phantoms.spec import PhantomSpec
from hipaug.data.phantoms.write import write_dataset, write_limb_dataset, write_pelvic_dataset

__all__ = [
    "LIMB_PARTS",
    "PELVIC_CLASSES",
    "LIMB_FRACTURE_TYPES",
    "PELVIC_FRACTURE_TYPES",
    "PhantomBatch",
    "PhantomSpec",
    "render_limb",
    "render_pelvic",
    "render_pair",
    "write_dataset",
    "write_limb_dataset",
    "write_pelvic_dataset",
]
