"""dalib: Depth Anything rebuilt to learn from.

Import the pieces you need from their modules; importing ``dalib`` itself stays light (this
file imports nothing). Where each concept lives, in the order the method uses them (a module
imports only from the groups above it, or its own):

Foundations
    ``config``        run profiles, seeds, devices, threads, where artifacts live
    ``io``            robust image / depth file I/O, atomic writes
    ``depth``         depth <-> disparity;  ``metrics``: AbsRel, δ1, metric-depth scores, mIoU
    ``download``      verified downloads;  ``workers``: worker processes that keep results exact
    ``distributed``   torchrun / DDP set-up;  ``report``: markdown tables and the run report

The synthetic world (notebook 00)
    ``synth``         the facade: ``render(domain, seed, size)``, the fifteen ``DOMAINS``
    ``world``         the renderer behind it: geometry, textures, props, scenes, domains,
                      shading, and the same renderer in torch for a GPU

Data
    ``sample``        the sample dict every dataset returns; resizing and cropping it
    ``synth_dataset`` rendered scenes, cached;  ``data``: folders, RGB-D pairs, pseudo labels
    ``mixing``        in-memory training sets and batches fixed by (seed, step)

The model (notebooks 03, 10)
    ``encoder``       the DINOv2 ViT and the input normalisation;  ``dpt``: the DPT head
    ``sizes``         model sizes and the config that rebuilds a model
    ``model``         ``DepthAnything``, ``DepthNet``, and building either from weights
    ``checkpoint``    dalib's checkpoint file;  ``official``: the released checkpoints' layout
    ``hub``           where the released checkpoints are, verified downloads
    ``inference``     ``predict``: any image in, disparity at its size out
    ``export``        the model as ONNX, and an ONNX Runtime session for it

The method (notebooks 01-06)
    ``losses``        affine-invariant, gradient-matching, CutMix, SiLog and L_feat losses
    ``augment``       strong perturbations, CutMix boxes, the paired flip
    ``objectives``    what a teacher or student step minimises
    ``optim``         training settings, AdamW groups, the schedule
    ``resume``, ``runlog``  resumable training state;  the JSON-lines metrics log
    ``loop``          ``fit``: the one training loop
    ``segmentation``  a segmentation head on the encoder, its training, mIoU
    ``standin``       the offline stand-in for DINOv2;  ``semantic``: feature alignment
    ``evaluate``      scoring: validation and held-out sets, zero-shot tests with baselines
    ``pool``          the unlabeled pool, written once;  ``pseudo``: the teacher labels it
    ``train``         ``train_teacher``, ``train_student``

Experiments and uses (notebooks 07-09)
    ``ablation``      Table 9 and the regime map over seeds
    ``metric_depth``  fine-tuning to metres (notebook 09 uses ``segmentation`` above)

Running it
    ``viz``           pictures;  ``predict_files``: folders of images in, disparity PNGs out
    ``notebooks``, ``colab``, ``diagram``, ``convert``; ``commands`` and
    ``__main__``: the ``python -m dalib`` command line
"""

__version__ = "0.1.0"
