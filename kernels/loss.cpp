#include "kernels/loss.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

LossType parse_loss_type(const std::string& name) {
  if (name == "l1") return LossType::L1;
  if (name == "l2") return LossType::L2;
  if (name == "huber") return LossType::Huber;
  DD_FAIL("loss: unknown loss type '", name, "' (expected l1, l2 or huber)");
}

const char* loss_type_name(LossType type) {
  switch (type) {
    case LossType::L1: return "l1";
    case LossType::L2: return "l2";
    case LossType::Huber: return "huber";
  }
  DD_FAIL("loss: invalid LossType value ", static_cast<int>(type));
}

namespace {
Device check_pair(const char* op, const Tensor& pred, const Tensor& target, LossType type) {
  DD_CHECK(pred.defined() && target.defined(), op, ": undefined operand");
  DD_CHECK(pred.shape() == target.shape(), op, " (", loss_type_name(type), "): pred ", describe(pred),
           " and target ", describe(target), " must have the same shape");
  DD_CHECK(pred.numel() > 0, op, " (", loss_type_name(type), "): the mean of an empty tensor ",
           describe(pred), " is undefined");
  return common_device(op, {&pred, &target});
}
}  // namespace

Tensor loss_forward(const Tensor& pred, const Tensor& target, LossType type) {
  DD_DISPATCH(check_pair("loss", pred, target, type), loss_forward, pred, target, type);
}

Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, float dloss) {
  DD_DISPATCH(check_pair("loss_backward", pred, target, type), loss_backward, pred, target, type,
              dloss);
}

Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, const Tensor& dloss) {
  const Device dev = check_pair("loss_backward", pred, target, type);
  DD_CHECK(dloss.defined() && dloss.numel() == 1 && dloss.dtype() == DType::F32 && dloss.device() == dev,
           "loss_backward: dloss must be one float on ", device_name(dev), ", got ",
           dloss.defined() ? describe(dloss) : std::string("undefined"));
  DD_DISPATCH(dev, loss_backward, pred, target, type, dloss);
}

namespace {
Device check_weights(const char* op, const Tensor& pred, const Tensor& target, LossType type, const Tensor& w) {
  const Device dev = check_pair(op, pred, target, type);
  DD_CHECK(w.defined() && w.ndim() == 1 && w.dim(0) == pred.dim(0) && w.device() == dev && w.dtype() == DType::F32, op,
           ": weights ", w.defined() ? describe(w) : std::string("undefined"), " must be [B] = [", pred.dim(0),
           "] floats on ", device_name(dev));
  return dev;
}
}  // namespace

Tensor loss_forward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights) {
  DD_DISPATCH(check_weights("weighted loss", pred, target, type, weights), loss_forward_weighted, pred, target, type,
              weights);
}

Tensor loss_backward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights,
                              const Tensor& dloss) {
  const Device dev = check_weights("weighted loss_backward", pred, target, type, weights);
  DD_CHECK(dloss.defined() && dloss.numel() == 1 && dloss.device() == dev, "weighted loss_backward: dloss must be one "
           "float on ", device_name(dev));
  DD_DISPATCH(dev, loss_backward_weighted, pred, target, type, weights, dloss);
}

}  // namespace dd::kernels
