// Minimal reproduction: FINN's mvu_vvu_axi (finn-plus 1.6.1), MW = SIMD (one input word per
// output), weights all 1 and always valid, input always valid (AXI-stream compliant: TVALID never
// drops, the data is a counter changed only after a handshake). Only the output's TREADY moves.
module mvu_queue_repro_top #(parameter int unsigned SIMD = 4) (
  input ap_clk, input ap_rst_n,
  input [3:0] in_tdata, output in_tready,
  output [15:0] out_tdata, output out_tvalid, input out_tready);
  mvu_vvu_axi #(.IS_MVU(1), .VERSION(1), .MW(SIMD), .MH(1), .PE(1), .SIMD(SIMD),
    .ACTIVATION_WIDTH(4), .WEIGHT_WIDTH(2), .ACCU_WIDTH(16), .NARROW_WEIGHTS(1),
    .SIGNED_ACTIVATIONS(0), .FORCE_BEHAVIORAL(1)) dut (
    .ap_clk(ap_clk), .ap_clk2x(ap_clk), .ap_rst_n(ap_rst_n),
    .s_axis_weights_tdata({SIMD{2'b01}}), .s_axis_weights_tvalid(1'b1), .s_axis_weights_tready(),
    .s_axis_input_tdata({SIMD{in_tdata}}), .s_axis_input_tvalid(1'b1), .s_axis_input_tready(in_tready),
    .m_axis_output_tdata(out_tdata), .m_axis_output_tvalid(out_tvalid), .m_axis_output_tready(out_tready));
endmodule
