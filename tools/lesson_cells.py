# ruff: noqa: E501  (notebook code and prose, kept as they appear in the notebooks)
"""The cells of the lesson notebooks lesson1–lesson4, in English and Chinese (see lesson_notebooks.py).

Our own words and code, after the lessons of the five teaching articles in ../shared/seeds/.
"""

from __future__ import annotations


def md(en: str, zh: str) -> tuple:
    return ("md", en, zh)


def code(source: str, tags: tuple[str, ...] = (), zh: str | None = None) -> tuple:
    return ("code", source, tags, zh)


IMPORTS = """\
import time

import matplotlib.pyplot as plt
import numpy as np

import cnnviz_widgets as cv
from cnnviz_widgets import keras  # Keras 3, without TensorFlow's start-up log lines
from cnnviz_widgets import lessons, render

keras.utils.set_random_seed(0)  # same data, same weights, same pictures on every run
"""

# ------------------------------------------------------------------------------------ lesson 1
SMALL_CONVNET = [
    md(
        """# Lesson: what each layer of a small convnet keeps

A classic exercise trains a small network to tell cats from dogs, then draws what every layer
makes of one photo. We do the same offline: the two classes are **handwritten 0s and 1s** from
scikit-learn, enlarged to 150×150 and painted in random colours, so the first layer has both edges
and colours to find. The network has the classic shape: four rounds of *3×3 convolution + 2×2 max
pooling*, then one **sigmoid** output (the probability of "1").""",
        """# 课程：小型卷积网络的每一层留下了什么

一个经典的练习是训练一个区分猫和狗的小网络，然后把每一层对同一张照片的结果画出来。这里我们完全离线地
做同样的事：两个类别是 scikit-learn 自带的**手写数字 0 和 1**，放大到 150×150，并涂上随机的颜色，
这样第一层既有边缘也有颜色可以检测。网络是经典的结构：四轮“3×3 卷积 + 2×2 最大池化”，最后是一个
**sigmoid** 输出（是“1”的概率）。

**术语表**：特征图（feature map）= 一个通道的输出图；通道（channel）= 一层中的一个卷积核对应的一张图；
卷积核（kernel / filter）= 在图上滑动的小权重矩阵；池化（pooling）= 把每个小块缩成一个数；
热力图（heat map）= 用颜色表示“哪里重要”的图。""",
    ),
    code(IMPORTS),
    code(
        """\
pictures, labels = lessons.digit_pair_set((0, 1), size=150, seed=0)
print("pictures:", pictures.shape, pictures.dtype, "· share of 1s:", round(float(labels.mean()), 2))
fig, axes = plt.subplots(1, 8, figsize=(12, 1.8))
for ax, picture, label in zip(axes, pictures, labels):
    ax.imshow(picture)
    ax.set_title(f"label {int(label)}")
    ax.axis("off")
plt.show()""",
        ("figure",),
        zh="""\
pictures, labels = lessons.digit_pair_set((0, 1), size=150, seed=0)
print("图片：", pictures.shape, pictures.dtype, "· 数字 1 的比例：", round(float(labels.mean()), 2))
fig, axes = plt.subplots(1, 8, figsize=(12, 1.8))
for ax, picture, label in zip(axes, pictures, labels):
    ax.imshow(picture)
    ax.set_title(f"标签 {int(label)}")
    ax.axis("off")
plt.show()""",
    ),
    md(
        "## The network and its summary\n\nEvery 3×3 convolution without padding loses a pixel "
        "on each side (150 → 148), every pooling halves the size (148 → 74).",
        "## 网络和它的概要\n\n不补边的 3×3 卷积让每边少一个像素（150 → 148），每次池化让尺寸减半（148 → 74）。",
    ),
    code("model = lessons.small_convnet()\nmodel.summary()"),
    md(
        "## Train it (seconds)\n\nFour fifths of the pictures train it, the rest test it.",
        "## 训练（几秒钟）\n\n五分之四的图片用来训练，其余的用来测试。",
    ),
    code(
        """\
order = np.random.default_rng(0).permutation(len(pictures))
pictures, labels = pictures[order], labels[order]
split = int(0.8 * len(pictures))
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
start = time.perf_counter()
model.fit(pictures[:split].astype("float32"), labels[:split], epochs=3, batch_size=32, verbose=0)
print(f"trained in {time.perf_counter() - start:.1f} s")
_, accuracy = model.evaluate(pictures[split:].astype("float32"), labels[split:], verbose=0)
print(f"test accuracy: {accuracy:.3f}")""",
        ("train",),
    ),
    md(
        """## The first layer, channel by channel

One test picture goes through the network. Of the 32 maps of the first layer (16 here), we pick
two by measuring, not by eye: the channel whose map follows the **edges** of the digit best (its
correlation with the Sobel edge strength of the picture), and the one that follows the **colour
of the stroke** best (its correlation with the ink).""",
        """## 第一层，一个通道一个通道地看

把一张测试图片送进网络。在第一层的特征图中，我们用测量而不是肉眼挑出两个通道：最贴合数字**边缘**的
通道（与图片 Sobel 边缘强度的相关性最高），以及最贴合**笔画颜色**的通道（与墨迹的相关性最高）。""",
    ),
    code(
        """\
photo = pictures[split]
maps = cv.activations(model, photo, "conv2d_1")  # (148, 148, channels)
grey = photo.mean(axis=2)[1:-1, 1:-1]
edges = np.hypot(lessons.correlate(grey, lessons.SOBEL_X), lessons.correlate(grey, lessons.SOBEL_X.T))
ink = np.abs(grey - np.median(grey))


def best_match(target, skip=()):
    flat = maps.reshape(-1, maps.shape[-1])
    scores = [np.corrcoef(flat[:, c], target.ravel())[0, 1] if flat[:, c].std() > 0 else -1
              for c in range(flat.shape[1])]
    scores = [-1 if c in skip else s for c, s in enumerate(scores)]
    return int(np.nanargmax(scores)), float(np.nanmax(scores))


ink_channel, ink_r = best_match(ink)
edge_channel, edge_r = best_match(edges, skip=(ink_channel,))  # two different channels
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(photo)
axes[0].set_title("input")
axes[1].imshow(maps[:, :, edge_channel], cmap="viridis")
axes[1].set_title(f"channel {edge_channel}: edge detector (r = {edge_r:.2f})")
axes[2].imshow(maps[:, :, ink_channel], cmap="viridis")
axes[2].set_title(f"channel {ink_channel}: colour detector (r = {ink_r:.2f})")
for ax in axes:
    ax.axis("off")
plt.show()""",
        ("figure",),
        zh="""\
photo = pictures[split]
maps = cv.activations(model, photo, "conv2d_1")  # (148, 148, 通道数)
grey = photo.mean(axis=2)[1:-1, 1:-1]
edges = np.hypot(lessons.correlate(grey, lessons.SOBEL_X), lessons.correlate(grey, lessons.SOBEL_X.T))
ink = np.abs(grey - np.median(grey))


def best_match(target, skip=()):
    flat = maps.reshape(-1, maps.shape[-1])
    scores = [np.corrcoef(flat[:, c], target.ravel())[0, 1] if flat[:, c].std() > 0 else -1
              for c in range(flat.shape[1])]
    scores = [-1 if c in skip else s for c, s in enumerate(scores)]
    return int(np.nanargmax(scores)), float(np.nanmax(scores))


ink_channel, ink_r = best_match(ink)
edge_channel, edge_r = best_match(edges, skip=(ink_channel,))  # two different channels
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(photo)
axes[0].set_title("输入")
axes[1].imshow(maps[:, :, edge_channel], cmap="viridis")
axes[1].set_title(f"通道 {edge_channel}：边缘检测器（r = {edge_r:.2f}）")
axes[2].imshow(maps[:, :, ink_channel], cmap="viridis")
axes[2].set_title(f"通道 {ink_channel}：颜色检测器（r = {ink_r:.2f}）")
for ax in axes:
    ax.axis("off")
plt.show()""",
    ),
    md(
        "The explorer opens on the same first layer, on its most contrasted channel. The tiles "
        "of the **Grid** carry their channel numbers.",
        "浏览器打开时就在第一层，显示对比度最强的通道。**网格**里的每个小图都标着通道编号。",
    ),
    code("ex = cv.ActivationExplorer(model, photo)\nex", ("widget",)),
    md(
        """## Every layer in one picture, 16 maps a row

Deeper layers have smaller maps and more of them; more and more channels stay **blank** (dark)
for this picture: they look for something it does not contain.""",
        """## 所有层放在一张图里，每行 16 张特征图

越深的层，特征图越小、越多；越来越多的通道对这张图是**空白**的（全暗）：它们寻找的东西这张图里没有。""",
    ),
    code(
        'lessons.layer_grids_figure(model, photo, per_row=16)\nplt.show()',
        ("figure",),
    ),
    code(
        """\
for path in cv.layer_paths(model)[1:]:
    maps = cv.activations(model, photo, path)
    print(f"{path:<16} {str(maps.shape):<16} blank channels: {lessons.blank_channel_share(maps):.0%}")""",
        zh="""\
for path in cv.layer_paths(model)[1:]:
    maps = cv.activations(model, photo, path)
    print(f"{path:<16} {str(maps.shape):<16} 空白通道：{lessons.blank_channel_share(maps):.0%}")""",
    ),
]

# ------------------------------------------------------------------------------------ lesson 2
RANDOM_AND_DEEP = [
    md(
        """# Lesson: random filters, trained filters, deeper and sparser

1. A **random** 4-layer convnet (9 filters a layer, never trained): its maps, and each layer's
   maps **fused** (added up 1:1).
2. The same walk over the stages of a **trained** network (EfficientNet-Lite0).
3. Deeper is sparser: the share of blank channels, layer by layer.
4. What the filters look for, from shallow to deep (filter ascent).""",
        """# 课程：随机的卷积核、训练过的卷积核，越深越稀疏

1. 一个**随机**的 4 层卷积网络（每层 9 个卷积核，从未训练）：它的特征图，以及每层特征图按 1:1 **融合**（相加）的结果。
2. 在一个**训练过**的网络（EfficientNet-Lite0）的各个阶段上做同样的观察。
3. 越深越稀疏：逐层统计空白通道的比例。
4. 从浅到深，卷积核在寻找什么（滤波器梯度上升）。

**术语表**：特征图、通道、卷积核、池化、融合图（所有特征图之和）。""",
    ),
    code(IMPORTS),
    code(
        """\
photo = cv.sample_image("chelsea")
plt.figure(figsize=(4, 3))
plt.imshow(photo)
plt.axis("off")
plt.show()
random_net = lessons.random_convnet(size=224, seed=0)
lessons.fused_maps_figure(random_net, photo, ["conv1", "conv2", "conv3", "conv4"])
plt.show()""",
        ("figure",),
    ),
    md(
        "Random filters still show the cat in the first layers: a filter, any filter, mixes "
        "neighbouring pixels, so outlines survive. Deeper, the maps get smaller and vaguer.",
        "即使是随机的卷积核，前几层也能看出猫：任何卷积核都在混合相邻像素，所以轮廓还在。越往深处，特征图越小、越模糊。",
    ),
    code(
        """\
model = cv.load_default_model()
stages = ["backbone/stem_activation", "backbone/block2b_add", "backbone/block3b_add",
          "backbone/block5c_add", "backbone/top_activation"]
lessons.fused_maps_figure(model, photo, stages, cmap="magma")
plt.show()""",
        ("figure",),
    ),
    md(
        "## Deeper is sparser\n\nA channel is *blank* when it is zero everywhere on this photo.",
        "## 越深越稀疏\n\n如果一个通道在这张照片上处处为零，它就是*空白*的。",
    ),
    code(
        """\
activation_layers = [p for p in cv.layer_paths(model) if p.endswith("activation")]
shares = [lessons.blank_channel_share(cv.activations(model, photo, p)) for p in activation_layers]
fig, ax = plt.subplots(figsize=(12, 3.5))
ax.plot(range(len(shares)), shares, marker="o")
ax.set_xticks(range(len(shares)), [p.split("/")[-1] for p in activation_layers], rotation=90, fontsize=7)
ax.set_ylabel("blank channels")
ax.set_title("share of blank channels, shallow → deep")
plt.show()
print(f"first layer {shares[0]:.0%} blank, last layer {shares[-1]:.0%} blank")""",
        ("figure",),
        zh="""\
activation_layers = [p for p in cv.layer_paths(model) if p.endswith("activation")]
shares = [lessons.blank_channel_share(cv.activations(model, photo, p)) for p in activation_layers]
fig, ax = plt.subplots(figsize=(12, 3.5))
ax.plot(range(len(shares)), shares, marker="o")
ax.set_xticks(range(len(shares)), [p.split("/")[-1] for p in activation_layers], rotation=90, fontsize=7)
ax.set_ylabel("空白通道比例")
ax.set_title("空白通道的比例，由浅到深")
plt.show()
print(f"第一层 {shares[0]:.0%} 空白，最后一层 {shares[-1]:.0%} 空白")""",
    ),
    md(
        """## What the filters look for, shallow → deep

Filter ascent starts from a grey image and changes it step by step so that one channel fires
as strongly as possible. Shallow channels want colours and stripes; deep ones want textures and
parts of objects.""",
        """## 卷积核在寻找什么，由浅到深

滤波器梯度上升从一张灰色图片出发，一步步修改它，让某个通道的响应尽可能强。浅层通道喜欢颜色和条纹；
深层通道喜欢纹理和物体的局部。""",
    ),
    code(
        """\
depths = ["backbone/stem_activation", "backbone/block2b_expand_activation",
          "backbone/block4a_expand_activation", "backbone/block6a_expand_activation"]
fig, axes = plt.subplots(len(depths), 1, figsize=(14, 2.3 * len(depths)))
for ax, layer in zip(axes, depths):
    images = cv.filter_ascent(model, layer, range(8), size=64, progress=False)
    grid, layout = render.image_grid(images, range(8), columns=8, tile_min_side=64)
    ax.imshow(render.number_tiles(grid, layout))
    ax.set_title(layer, loc="left")
    ax.axis("off")
plt.show()""",
        ("figure",),
    ),
]

# ------------------------------------------------------------------------------------ lesson 3
GRADCAM_DECONV = [
    md(
        """# Lesson: Grad-CAM step by step, and deconvnet's switches

Grad-CAM answers *where in the photo is the evidence for this class?* It reads the feature maps
of the last convolutional layer and the gradient of the class score there. Below, every step is
its own picture.""",
        """# 课程：一步一步看 Grad-CAM，以及反卷积网络的“开关”

Grad-CAM 回答的问题是：*照片的哪个部分支持这个类别？* 它读取最后一个卷积层的特征图，以及类别得分在那里的梯度。
下面每一步都是一张单独的图。

**术语表**：热力图（heat map）、梯度（gradient）、通道权重（channel weight）、上采样（upsampling）、
反池化（unpooling）、开关（switch，记录最大值位置的表）。""",
    ),
    code(IMPORTS),
    code(
        """\
model = cv.load_default_model()
photo = cv.sample_image("chelsea")
(index, label, probability), = cv.predict_top(model, photo, k=1)
layer = cv.default_cam_layer(model)
print(f"top class: {label} ({index}), p = {probability:.2f}; layer: {layer}")
steps = lessons.gradcam_steps(model, photo, layer, index)
lessons.steps_figure(steps)
plt.show()""",
        ("figure",),
        zh="""\
model = cv.load_default_model()
photo = cv.sample_image("chelsea")
(index, label, probability), = cv.predict_top(model, photo, k=1)
layer = cv.default_cam_layer(model)
print(f"最可能的类别：{label}（{index}），p = {probability:.2f}；层：{layer}")
steps = lessons.gradcam_steps(model, photo, layer, index)
lessons.steps_figure(steps)
plt.show()""",
    ),
    md(
        "Our step-by-step map and the package's `grad_cam` agree:",
        "我们一步步算出的热力图和程序包的 `grad_cam` 一致：",
    ),
    code(
        """\
packaged = cv.grad_cam(model, photo, class_index=index, layer=layer)
ours = steps["upsampled"]
if ours.shape != packaged.shape:
    from PIL import Image
    ours = np.asarray(Image.fromarray(ours, mode="F").resize(packaged.shape[::-1]))
print("correlation:", round(float(np.corrcoef(ours.ravel(), packaged.ravel())[0, 1]), 3))""",
    ),
    md(
        """## Deconvnet: max-unpooling with switches

On a network with real max pooling (hand-made edge filters → ReLU → 2×2 max pool), the forward
pass records, for every pooled value, *which* of the four pixels was the largest: the
**switches**. The way back puts each value where its switch says, zeros elsewhere (unpooling),
applies ReLU, and convolves with the flipped filter (transposed convolution).""",
        """## 反卷积网络：带“开关”的最大值反池化

在一个真正使用最大池化的网络上（手工边缘卷积核 → ReLU → 2×2 最大池化），前向计算为每个池化后的值
记下四个像素中*哪一个*最大：这就是**开关**。反向时把每个值放回开关记录的位置，其他位置填 0（反池化），
再做 ReLU，最后用翻转的卷积核做卷积（转置卷积）。""",
    ),
    code(
        """\
from cnnviz_widgets.engine.models import handmade_filter_model

net = handmade_filter_model()
grey = np.uint8(cv.sample_image("coffee").mean(axis=2))
relu = cv.activations(net, grey, "relu")        # after conv + ReLU
pooled = cv.activations(net, grey, "pool")      # the network's own max pooling
ours, switches = lessons.max_pool_with_switches(relu)
print("our pooling equals the network's:", bool(np.allclose(ours, pooled)))
channel = 0
back = np.maximum(lessons.unpool(pooled, switches), 0)
kernel = cv.kernel_weights(net, "edges")[:, :, 0, channel]
reconstruction = lessons.correlate(back[:, :, channel], kernel[::-1, ::-1])

crop = (slice(40, 56), slice(60, 76))
marks = lessons.unpool(np.ones_like(pooled), switches)[crop][:, :, channel]
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
axes[0].imshow(pooled[:, :, channel], cmap="viridis")
axes[0].set_title(f"pooled map {pooled.shape[0]}×{pooled.shape[1]}")
axes[1].imshow(marks, cmap="gray")
axes[1].set_xticks(np.arange(-0.5, 16, 2), [])
axes[1].set_yticks(np.arange(-0.5, 16, 2), [])
axes[1].grid(color="red", linewidth=1)
axes[1].set_title("switches (16×16 crop): white = max of its 2×2")
axes[2].imshow(back[:, :, channel], cmap="viridis")
axes[2].set_title("unpooled: values back at their switches")
axes[3].imshow(reconstruction, cmap="gray")
axes[3].set_title("transposed conv: back to pixels")
for ax in (axes[0], axes[2], axes[3]):
    ax.axis("off")
plt.show()""",
        ("figure",),
        zh="""\
from cnnviz_widgets.engine.models import handmade_filter_model

net = handmade_filter_model()
grey = np.uint8(cv.sample_image("coffee").mean(axis=2))
relu = cv.activations(net, grey, "relu")        # 卷积 + ReLU 之后
pooled = cv.activations(net, grey, "pool")      # 网络自己的最大池化
ours, switches = lessons.max_pool_with_switches(relu)
print("我们的池化与网络的池化相同：", bool(np.allclose(ours, pooled)))
channel = 0
back = np.maximum(lessons.unpool(pooled, switches), 0)
kernel = cv.kernel_weights(net, "edges")[:, :, 0, channel]
reconstruction = lessons.correlate(back[:, :, channel], kernel[::-1, ::-1])

crop = (slice(40, 56), slice(60, 76))
marks = lessons.unpool(np.ones_like(pooled), switches)[crop][:, :, channel]
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
axes[0].imshow(pooled[:, :, channel], cmap="viridis")
axes[0].set_title(f"池化后的特征图 {pooled.shape[0]}×{pooled.shape[1]}")
axes[1].imshow(marks, cmap="gray")
axes[1].set_xticks(np.arange(-0.5, 16, 2), [])
axes[1].set_yticks(np.arange(-0.5, 16, 2), [])
axes[1].grid(color="red", linewidth=1)
axes[1].set_title("开关（16×16 局部）：白色 = 2×2 中的最大值")
axes[2].imshow(back[:, :, channel], cmap="viridis")
axes[2].set_title("反池化：值回到开关记录的位置")
axes[3].imshow(reconstruction, cmap="gray")
axes[3].set_title("转置卷积：回到像素")
for ax in (axes[0], axes[2], axes[3]):
    ax.axis("off")
plt.show()""",
    ),
    md(
        "The same idea on a deep network: `cv.deconvnet` projects one channel back to pixels.",
        "同样的思路用在深层网络上：`cv.deconvnet` 把一个通道投影回像素。",
    ),
    code(
        """\
projection = cv.deconvnet(model, photo, "backbone/block3a_expand_activation", channel=7)
plt.figure(figsize=(5, 4))
plt.imshow(cv.normalize_signed(projection))
plt.axis("off")
plt.show()""",
        ("figure",),
    ),
]

# ------------------------------------------------------------------------------------ lesson 4
PIXELS_FILTERS = [
    md(
        """# Lesson: pixels, filters, conv → ReLU → pool

To a computer a picture is a grid of numbers. A filter is a small grid of numbers too; sliding
it over the picture and adding up the products is a convolution.""",
        """# 课程：像素、卷积核、卷积 → ReLU → 池化

对计算机来说，一张图片就是一格一格的数字。卷积核也是一小格数字；把它在图片上滑动、把对应位置的乘积加起来，
就是卷积。

**术语表**：像素（pixel）、卷积核（kernel）、特征图、ReLU（把负数变成 0）、池化。""",
    ),
    code(IMPORTS),
    code(
        """\
from sklearn.datasets import load_digits

digits = load_digits()
fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for ax, picture, label in zip(axes, digits.images, digits.target):
    ax.imshow(picture, cmap="gray")
    ax.set_title(str(label))
    ax.axis("off")
plt.show()
digit = digits.images[3] / 16.0  # an 8×8 "3", grey levels scaled to 0–1
lessons.pixel_values_figure(digit)
plt.show()""",
        ("figure",),
    ),
    code(
        """\
grey = cv.sample_image("astronaut").mean(axis=2)[::2, ::2]
lessons.sobel_figure(grey)
plt.show()""",
        ("figure",),
    ),
    md(
        "## Four hand-made ±1 filters, with their numbers",
        "## 四个手工的 ±1 卷积核，带上它们的数值",
    ),
    code(
        """\
from cnnviz_widgets.engine.models import handmade_filter_model
from cnnviz_widgets.render.kernels import DEFAULT_FILTERS

four = dict(list(DEFAULT_FILTERS.items())[:4])
net = handmade_filter_model(four)
plt.figure(figsize=(8, 3))
plt.imshow(render.kernel_grid(cv.kernel_weights(net, "edges"), numbers=True))
plt.title(" · ".join(four))
plt.axis("off")
plt.show()""",
        ("figure",),
    ),
    md("## conv → ReLU → pool, with sizes", "## 卷积 → ReLU → 池化，以及尺寸"),
    code(
        """\
photo = np.uint8(cv.sample_image("coffee").mean(axis=2))
fig, axes = plt.subplots(len(four), 3, figsize=(11, 3.2 * len(four)))
for row, name in enumerate(four):
    for col, layer in enumerate(["edges", "relu", "pool"]):
        maps = cv.activations(net, photo, layer)
        axes[row, col].imshow(maps[:, :, row], cmap="gray")
        axes[row, col].set_title(f"{name} · {layer} · {maps.shape[0]}×{maps.shape[1]}", fontsize=9)
        axes[row, col].axis("off")
plt.show()
net.summary()""",
        ("figure",),
    ),
]

LESSONS = {
    "lesson1_small_convnet.ipynb": SMALL_CONVNET,
    "lesson2_random_and_deep.ipynb": RANDOM_AND_DEEP,
    "lesson3_gradcam_deconvnet.ipynb": GRADCAM_DECONV,
    "lesson4_pixels_and_filters.ipynb": PIXELS_FILTERS,
}
